package modelio

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
)

// torchrecTensors makes a TorchRec DLRM (or, with cross layers of the given
// ranks, DLRM_DCN) state dict: 13 dense, dense arch 13-8-4, tables named
// names (4 wide), over arch 6 then 1; every name carries prefix.
func torchrecTensors(prefix string, names []string, ranks []int, biasShape func(n int) []int) []Tensor {
	rng := rand.New(rand.NewPCG(7, uint64(len(names))))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32() - 0.5
		}
		return v
	}
	var ts []Tensor
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		ts = append(ts, F32Tensor(prefix+name, shape, fill(n)))
	}
	for i, k := range names {
		add("sparse_arch.embedding_bag_collection.embedding_bags."+k+".weight", 3+i, 4)
	}
	dims := []int{13, 8, 4}
	for i := 0; i+1 < len(dims); i++ {
		add(fmt.Sprintf("dense_arch.model._mlp.%d._linear.weight", i), dims[i+1], dims[i])
		add(fmt.Sprintf("dense_arch.model._mlp.%d._linear.bias", i), dims[i+1])
	}
	f := len(names) + 1
	in := 4 + f*(f-1)/2
	if ranks != nil {
		in = 4 * f
		for l, r := range ranks {
			add(fmt.Sprintf("inter_arch.crossnet.W_kernels.%d", l), in, r)
			add(fmt.Sprintf("inter_arch.crossnet.V_kernels.%d", l), r, in)
			add(fmt.Sprintf("inter_arch.crossnet.bias.%d", l), biasShape(in)...)
		}
	}
	add("over_arch.model.0._mlp.0._linear.weight", 6, in)
	add("over_arch.model.0._mlp.0._linear.bias", 6)
	add("over_arch.model.1.weight", 1, 6)
	add("over_arch.model.1.bias", 1)
	return ts
}

func tableNames(n *model.Network) []string {
	var s []string
	for _, t := range n.Tables {
		s = append(s, t.Name[strings.LastIndexByte(t.Name, '.')+1:])
	}
	return s
}

func TestTorchRecDLRM(t *testing.T) {
	// Tables listed out of order: t_cat_10 comes after t_cat_9 (by number,
	// not by name nor by file order).
	names := []string{"t_cat_10", "t_cat_2", "t_cat_0", "t_cat_9", "t_cat_1"}
	for _, prefix := range []string{"", "model.", "module.model."} {
		net, family, err := BuildNetwork("x.pt", torchrecTensors(prefix, names, nil, nil))
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		if family != "torchrec DLRM" || net.Interaction != model.DotTriu {
			t.Errorf("prefix %q: %s with %v", prefix, family, net.Interaction)
		}
		if got := tableNames(net); !slices.Equal(got, []string{"t_cat_0", "t_cat_1", "t_cat_2", "t_cat_9", "t_cat_10"}) {
			t.Errorf("prefix %q: tables in order %v", prefix, got)
		}
		// Layer names are the file's tensor prefixes, prefix included.
		want := []string{prefix + "dense_arch.model._mlp.0._linear", prefix + "dense_arch.model._mlp.1._linear"}
		got := []string{net.Bottom[0].Name, net.Bottom[1].Name}
		if !slices.Equal(got, want) || net.Tables[0].Name != prefix+"sparse_arch.embedding_bag_collection.embedding_bags.t_cat_0" {
			t.Errorf("prefix %q: names %v, %s", prefix, got, net.Tables[0].Name)
		}
		if len(net.Top) != 2 || net.Top[0].Name != prefix+"over_arch.model.0._mlp.0._linear" || net.Top[1].Name != prefix+"over_arch.model.1" ||
			net.Top[0].Act != model.ActReLU || net.Top[1].Act != model.ActSigmoid || net.Bottom[1].Act != model.ActReLU {
			t.Errorf("prefix %q: top %s (%v), %s (%v)", prefix, net.Top[0].Name, net.Top[0].Act, net.Top[1].Name, net.Top[1].Act)
		}
	}
	// Names without distinct trailing numbers keep the file's order.
	net, _, err := BuildNetwork("x.pt", torchrecTensors("", []string{"user", "item_7", "ad_7"}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := tableNames(net); !slices.Equal(got, []string{"user", "item_7", "ad_7"}) {
		t.Errorf("tables %v, want file order", got)
	}
}

func TestTorchRecDCN(t *testing.T) {
	names := []string{"t_cat_0", "t_cat_1", "t_cat_2"}
	for _, bias := range []func(int) []int{func(n int) []int { return []int{n} }, func(n int) []int { return []int{n, 1} }} {
		ts := torchrecTensors("model.", names, []int{3, 2}, bias)
		net, family, err := BuildNetwork("dcn.safetensors", ts)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := net.Interaction.(*model.CrossNet)
		if family != "torchrec DLRM_DCN" || !ok || len(c.V) != 2 || net.InputWidth() != 16 {
			t.Fatalf("%s with %v (%T), width %d", family, net.Interaction, net.Interaction, net.InputWidth())
		}
		var got []string
		for l := range net.Layers() {
			got = append(got, l.Name())
		}
		want := []string{
			"model.dense_arch.model._mlp.0._linear", "model.dense_arch.model._mlp.1._linear",
			"model.sparse_arch.embedding_bag_collection.embedding_bags.t_cat_0",
			"model.sparse_arch.embedding_bag_collection.embedding_bags.t_cat_1",
			"model.sparse_arch.embedding_bag_collection.embedding_bags.t_cat_2",
			"model.inter_arch.crossnet.V_kernels.0", "model.inter_arch.crossnet.W_kernels.0",
			"model.inter_arch.crossnet.V_kernels.1", "model.inter_arch.crossnet.W_kernels.1",
			"model.over_arch.model.0._mlp.0._linear", "model.over_arch.model.1",
		}
		if !slices.Equal(got, want) {
			t.Errorf("layers %v\nwant %v", got, want)
		}
		// W's bias is the file's bias.l, whichever its shape.
		var b1 []float32
		for _, x := range ts {
			if x.Name == "model.inter_arch.crossnet.bias.1" {
				b1, _ = Float32s(&x)
			}
		}
		if !slices.Equal(c.W[1].Bias, b1) || c.V[1].Bias != nil || c.V[1].Out != 2 || c.W[0].In != 3 {
			t.Errorf("cross layer 1: W bias %v, want %v; V bias %v", c.W[1].Bias, b1, c.V[1].Bias)
		}
	}

	// The structure of an rq quantized file of the DCN: each layer's
	// tensors under its name, the interaction recorded.
	net, _, err := BuildNetwork("dcn.safetensors", torchrecTensors("", names, []int{3}, func(n int) []int { return []int{n} }))
	if err != nil {
		t.Fatal(err)
	}
	var skel []Tensor
	for l := range net.Layers() {
		if l.Table != nil {
			skel = append(skel, Tensor{Name: l.Name() + ".weight", DType: F32, Shape: []int{int(l.Table.Rows), l.Table.Dim}})
			continue
		}
		skel = append(skel, Tensor{Name: l.Name() + ".weight", DType: F32, Shape: []int{l.FC.Out, l.FC.In}})
		if l.FC.Bias != nil {
			skel = append(skel, Tensor{Name: l.Name() + ".bias", DType: F32, Shape: []int{l.FC.Out}})
		}
	}
	back, _, err := buildStructure("q.safetensors", skel, "dcn")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.LayerNames(), net.LayerNames()) || back.Interaction.String() != "dcn" {
		t.Errorf("quantized structure: %v with %v", back.LayerNames(), back.Interaction)
	}
	if _, _, err := buildStructure("q.safetensors", skel, "dot-triu"); err == nil || !strings.Contains(err.Error(), "dot-triu") {
		t.Errorf("recorded dot-triu on a DCN: %v", err)
	}
}

func TestTorchRecErrors(t *testing.T) {
	names := []string{"t_cat_0", "t_cat_1"}
	dcn := func() []Tensor { return torchrecTensors("", names, []int{3, 3}, func(n int) []int { return []int{n} }) }
	without := func(ts []Tensor, name string) []Tensor {
		return slices.DeleteFunc(ts, func(t Tensor) bool { return t.Name == name })
	}
	replace := func(ts []Tensor, name string, shape ...int) []Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		for i := range ts {
			if ts[i].Name == name {
				ts[i] = F32Tensor(name, shape, make([]float32, n))
			}
		}
		return ts
	}
	cases := []struct {
		name    string
		tensors []Tensor
		choice  string
		want    []string
	}{
		{"no W", without(dcn(), "inter_arch.crossnet.W_kernels.1"), "", []string{"inter_arch.crossnet.V_kernels.1", "no W kernel"}},
		{"no bias", without(dcn(), "inter_arch.crossnet.bias.0"), "", []string{"inter_arch.crossnet.W_kernels.0", "no bias"}},
		{"layer gap", without(without(without(dcn(), "inter_arch.crossnet.V_kernels.0"), "inter_arch.crossnet.W_kernels.0"), "inter_arch.crossnet.bias.0"), "", []string{"cross layer 0", "V_kernels.0"}},
		{"V width", replace(dcn(), "inter_arch.crossnet.V_kernels.1", 3, 10), "", []string{"inter_arch.crossnet.V_kernels.1", "[3 10]", "12 wide"}},
		{"W shape", replace(dcn(), "inter_arch.crossnet.W_kernels.0", 12, 4), "", []string{"inter_arch.crossnet.W_kernels.0", "[12, 3]", "V_kernels.0"}},
		{"bias shape", replace(dcn(), "inter_arch.crossnet.bias.1", 12, 2), "", []string{"inter_arch.crossnet.bias.1", "[12 2]", "[12, 1]"}},
		{"over width", replace(dcn(), "over_arch.model.0._mlp.0._linear.weight", 6, 11), "", []string{"over_arch.model.0._mlp.0._linear.weight", "11 inputs", "dcn", "12"}},
		{"dot width", replace(torchrecTensors("", names, nil, nil), "over_arch.model.0._mlp.0._linear.weight", 6, 12), "", []string{"over_arch.model.0._mlp.0._linear.weight", "12 inputs", "dot-triu", "gives 7"}},
		{"table width", replace(dcn(), "sparse_arch.embedding_bag_collection.embedding_bags.t_cat_1.weight", 4, 5), "", []string{"t_cat_1.weight", "width 5", "dense_arch.model._mlp.1._linear"}},
		{"choice", torchrecTensors("", names, nil, nil), "dot", []string{"dot", "dot-triu", "--interaction"}},
		{"stranger", append(dcn(), F32Tensor("inter_arch.crossnet.extra", []int{1}, []float32{0})), "", []string{"inter_arch.crossnet.extra", "not part of a torchrec network"}},
		{"stray prefix", append(torchrecTensors("model.", names, nil, nil), F32Tensor("optimizer.lr", []int{1}, []float32{0})), "", []string{"optimizer.lr", `"model."`}},
		{"no over arch", without(without(torchrecTensors("", names, nil, nil), "over_arch.model.1.weight"), "over_arch.model.1.bias"), "", []string{"over_arch.model.0._mlp.0._linear", "6 outputs"}},
	}
	for _, c := range cases {
		_, _, err := BuildNetworkWith("m.pt", c.tensors, LoadOptions{Interaction: c.choice})
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range append(c.want, "m.pt") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

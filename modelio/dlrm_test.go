package modelio

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/quantize"
)

// dlrmTensors makes a facebookresearch/dlrm state dict with the given shape:
// bottom dims (dense first), table rows (width = bottom output unless dims
// given), and top dims after the interaction width.
func dlrmTensors(bottom []int, rows []int, dims []int, topIn int, top []int) []Tensor {
	var ts []Tensor
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%7) * 0.01
		}
		return v
	}
	for i := 0; i+1 < len(bottom); i++ {
		ts = append(ts, F32Tensor(fmt.Sprintf("bot_l.%d.weight", 2*i), []int{bottom[i+1], bottom[i]}, fill(bottom[i]*bottom[i+1])))
		ts = append(ts, F32Tensor(fmt.Sprintf("bot_l.%d.bias", 2*i), []int{bottom[i+1]}, fill(bottom[i+1])))
	}
	for t, r := range rows {
		d := bottom[len(bottom)-1]
		if dims != nil {
			d = dims[t]
		}
		ts = append(ts, F32Tensor(fmt.Sprintf("emb_l.%d.weight", t), []int{r, d}, fill(r*d)))
	}
	dims2 := append([]int{topIn}, top...)
	for i := 0; i+1 < len(dims2); i++ {
		ts = append(ts, F32Tensor(fmt.Sprintf("top_l.%d.weight", 2*i), []int{dims2[i+1], dims2[i]}, fill(dims2[i]*dims2[i+1])))
		ts = append(ts, F32Tensor(fmt.Sprintf("top_l.%d.bias", 2*i), []int{dims2[i+1]}, fill(dims2[i+1])))
	}
	return ts
}

func TestBuildNetworkInteractions(t *testing.T) {
	// 3 tables + bottom: F = 4 vectors of width 8.
	cases := []struct {
		topIn int
		dims  []int
		want  model.InteractionOp
	}{
		{8 + 6, nil, model.Dot},                    // strict lower triangle
		{8 + 10, nil, model.DotSelf},               // with the diagonal
		{8 + 4 + 5 + 6, []int{4, 5, 6}, model.Cat}, // concatenation, mixed widths
	}
	for _, c := range cases {
		net, scheme, err := BuildNetwork("x.safetensors", dlrmTensors([]int{13, 32, 8}, []int{10, 20, 30}, c.dims, c.topIn, []int{16, 1}))
		if err != nil {
			t.Fatalf("%v: %v", c.want, err)
		}
		if net.Interaction != c.want || scheme != "facebookresearch/dlrm" {
			t.Errorf("top input %d: inferred %v, want %v", c.topIn, net.Interaction, c.want)
		}
		if net.NumDense != 13 || len(net.Bottom) != 2 || net.Bottom[1].Name != "bot_l.2" || net.Top[1].Act != model.ActSigmoid || net.Top[0].Act != model.ActReLU {
			t.Errorf("network %+v", net)
		}
	}
}

func TestBuildNetworkErrors(t *testing.T) {
	good := func() []Tensor { return dlrmTensors([]int{13, 32, 8}, []int{10, 20, 30}, nil, 14, []int{16, 1}) }
	without := func(name string) []Tensor {
		var out []Tensor
		for _, t := range good() {
			if t.Name != name {
				out = append(out, t)
			}
		}
		return out
	}
	replace := func(name string, shape []int) []Tensor {
		ts := good()
		for i := range ts {
			if ts[i].Name == name {
				n := 1
				for _, d := range shape {
					n *= d
				}
				ts[i] = F32Tensor(name, shape, make([]float32, n))
			}
		}
		return ts
	}
	cases := []struct {
		name    string
		tensors []Tensor
		want    []string
	}{
		{"missing bias", without("bot_l.2.bias"), []string{"bot_l.2.bias", "missing"}},
		{"missing weight", without("top_l.0.weight"), []string{"top_l.0.weight", "missing"}},
		{"table gap", without("emb_l.1.weight"), []string{"emb_l.1.weight is missing"}},
		{"bad top width", replace("top_l.0.weight", []int{16, 15}), []string{"top_l.0.weight", "15 inputs", "dot gives 14"}},
		{"bottom chain", replace("bot_l.2.weight", []int{8, 31}), []string{"bot_l.2", "31 inputs", "bot_l.0"}},
		{"bias shape", replace("top_l.0.bias", []int{17}), []string{"top_l.0.bias", "[17]"}},
		{"table width", replace("emb_l.2.weight", []int{30, 9}), []string{"emb_l.2"}},
		{"table rank", replace("emb_l.0.weight", []int{10}), []string{"emb_l.0.weight", "[rows, dim]"}},
		{"two outputs", append(without("top_l.2.weight"), F32Tensor("top_l.2.weight", []int{2, 16}, make([]float32, 32))), []string{"top_l.2", "bias"}},
		{"stranger", append(good(), F32Tensor("extra.thing", []int{1}, []float32{0})), []string{"extra.thing", "not part of"}},
		{"no scheme", []Tensor{F32Tensor("foo.weight", []int{1}, []float32{0})}, []string{"naming scheme", "foo.weight"}},
		{"int weights", append(without("bot_l.0.weight"), I64Tensor("bot_l.0.weight", []int{32, 13}, make([]int64, 32*13))), []string{"bot_l.0.weight", "I64"}},
	}
	for _, c := range cases {
		_, _, err := BuildNetwork("m.safetensors", c.tensors)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range append(c.want, "m.safetensors") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

// TestLoadFormats reads the same network from both file formats.
func TestLoadFormats(t *testing.T) {
	dir := t.TempDir()
	ts := dlrmTensors([]int{4, 8}, []int{5, 6}, nil, 8+3, []int{1})
	path := dir + "/m.safetensors"
	if err := WriteSafetensors(path, TensorsSpec(ts), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Format != FormatSafetensors || m.Net.Interaction != model.Dot || m.Meta["k"] != "v" || len(m.Net.Tables) != 2 {
		t.Errorf("loaded %+v", m)
	}
	if _, err := Load(dir + "/none"); err == nil {
		t.Error("missing file accepted")
	}
	if err := WriteSafetensors(dir+"/junk", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir + "/junk"); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("empty model: %v", err)
	}
}

// ambiguousCases are shapes whose top MLP width fits two interactions: dot
// and cat coincide when d = (T+1)/2, dot-self and cat when
// T*d = (T+1)(T+2)/2 (T tables of width d).
var ambiguousCases = []struct {
	name       string
	bottom     []int
	rows       []int
	topIn      int
	candidates []model.InteractionOp
	misfit     model.InteractionOp // fits neither: its error names the width it needs
	misfitNeed string
}{
	{"dot or cat", []int{4, 2}, []int{5, 6, 7}, 2 + 6, []model.InteractionOp{model.Dot, model.Cat}, model.DotSelf, "needs 12"},
	{"dot-self or cat", []int{4, 3}, []int{5, 6}, 3 + 6, []model.InteractionOp{model.DotSelf, model.Cat}, model.Dot, "needs 6"},
}

func TestBuildNetworkAmbiguousInteraction(t *testing.T) {
	for _, c := range ambiguousCases {
		ts := dlrmTensors(c.bottom, c.rows, nil, c.topIn, []int{4, 1})
		_, _, err := BuildNetwork("amb.safetensors", ts)
		var amb *AmbiguousInteractionError
		if !errors.As(err, &amb) {
			t.Fatalf("%s: BuildNetwork gave %v, want an AmbiguousInteractionError", c.name, err)
		}
		if !slices.Equal(amb.Candidates, c.candidates) || amb.Width != c.topIn {
			t.Errorf("%s: candidates %v width %d, want %v %d", c.name, amb.Candidates, amb.Width, c.candidates, c.topIn)
		}
		flag := "--interaction " + c.candidates[0].String() + "|" + c.candidates[1].String()
		for _, w := range []string{"amb.safetensors", "top_l.0.weight", c.candidates[0].String() + " and " + c.candidates[1].String(), flag} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}

		// Each candidate builds its own network, and they compute different things.
		var preds [][]float32
		for _, op := range c.candidates {
			net, _, err := BuildNetworkWith("amb.safetensors", dlrmTensors(c.bottom, c.rows, nil, c.topIn, []int{4, 1}), LoadOptions{Interaction: op.String()})
			if err != nil {
				t.Fatalf("%s: --interaction %s: %v", c.name, op, err)
			}
			if net.Interaction != op {
				t.Errorf("%s: --interaction %s built %s", c.name, op, net.Interaction)
			}
			b := tinyBatch(net)
			for i := range b.Dense {
				b.Dense[i] = float32(i + 1)
			}
			p, err := model.NewRunner(net, 1).Forward(b)
			if err != nil {
				t.Fatal(err)
			}
			preds = append(preds, p)
		}
		if slices.Equal(preds[0], preds[1]) {
			t.Errorf("%s: %v and %v give the same predictions %v; the test cannot tell them apart", c.name, c.candidates[0], c.candidates[1], preds[0])
		}

		// A choice that does not fit names the width it needs.
		_, _, err = BuildNetworkWith("amb.safetensors", ts, LoadOptions{Interaction: c.misfit.String()})
		if err == nil || !strings.Contains(err.Error(), c.misfitNeed) || !strings.Contains(err.Error(), "top_l.0.weight") || !strings.Contains(err.Error(), fmt.Sprintf("takes %d inputs", c.topIn)) {
			t.Errorf("%s: --interaction %s: %v, want an error saying it %s", c.name, c.misfit, err, c.misfitNeed)
		}
	}
	// An unambiguous width accepts the op that fits and names the need of one that does not.
	ts := dlrmTensors([]int{13, 32, 8}, []int{10, 20, 30}, nil, 8+6, []int{16, 1})
	if net, _, err := BuildNetworkWith("m", ts, LoadOptions{Interaction: "dot"}); err != nil || net.Interaction != model.Dot {
		t.Errorf("dot on a dot model: %v", err)
	}
	if _, _, err := BuildNetworkWith("m", ts, LoadOptions{Interaction: "cat"}); err == nil || !strings.Contains(err.Error(), "needs 32") {
		t.Errorf("cat on a dot model: %v", err)
	}
	if _, _, err := BuildNetworkWith("m", ts, LoadOptions{Interaction: "sum"}); err == nil || !strings.Contains(err.Error(), `"sum"`) {
		t.Errorf("unknown interaction: %v", err)
	}
	// Tables narrower than the bottom output rule the dot products out.
	ts = dlrmTensors([]int{13, 8}, []int{10, 20, 30}, []int{8, 8, 2}, 8+6, []int{1})
	if _, _, err := BuildNetworkWith("m", ts, LoadOptions{Interaction: "dot"}); err == nil || !strings.Contains(err.Error(), "emb_l.2 is 2 wide") {
		t.Errorf("dot with a 2-wide table: %v", err)
	}
}

// TestQuantizedRecordsInteraction: a quantized cat model whose width also
// fits dot reads back as cat, from the rq.interaction it records.
func TestQuantizedRecordsInteraction(t *testing.T) {
	dir := t.TempDir()
	for _, c := range ambiguousCases {
		for _, op := range c.candidates {
			net, _, err := BuildNetworkWith("amb", dlrmTensors(c.bottom, c.rows, nil, c.topIn, []int{4, 1}), LoadOptions{Interaction: op.String()})
			if err != nil {
				t.Fatal(err)
			}
			plan, err := quantize.Preset("int8-dynamic", net)
			if err != nil {
				t.Fatal(err)
			}
			q, err := quantize.Apply(net, plan, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, op.String()+".safetensors")
			if err := WriteQuantized(p, q, nil, QuantInfo{SourceSHA256: "00"}); err != nil {
				t.Fatal(err)
			}
			m, err := Load(p)
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, op, err)
			}
			if m.Net.Interaction != op {
				t.Errorf("%s: wrote %s, read back %s", c.name, op, m.Net.Interaction)
			}
			m.Close()
		}
	}
}

package modelio

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/rqtools/rq/model"
)

// torchrecScheme reads TorchRec's torchrec.models.dlrm DLRM and DLRM_DCN
// (MLPerf's dlrm-v2): tables under the EmbeddingBagCollection, the dense
// arch (ReLU after every layer), an optional low-rank DCN-v2 cross network,
// and the over arch: an MLP with ReLU, then a plain Linear whose output the
// prediction's sigmoid takes (rq's last top layer with ActSigmoid). Without
// a cross network the interaction is the dot in TorchRec's order.
var torchrecScheme = scheme{
	name:           "torchrec",
	roots:          []string{"sparse_arch.", "dense_arch.", "inter_arch.", "over_arch."},
	table:          regexp.MustCompile(`^sparse_arch\.embedding_bag_collection\.embedding_bags\.(.+)\.weight$`),
	tablesByNumber: true,
	bottom:         []*regexp.Regexp{regexp.MustCompile(`^dense_arch\.model\._mlp\.(?P<i>\d+)\._linear\.(?P<p>weight|bias)$`)},
	top: []*regexp.Regexp{
		regexp.MustCompile(`^over_arch\.model\.0\._mlp\.(?P<i>\d+)\._linear\.(?P<p>weight|bias)$`),
		regexp.MustCompile(`^over_arch\.model\.1\.(?P<p>weight|bias)$`),
	},
	cross:        &crossScheme{},
	interactions: []model.InteractionOp{model.DotTriu},
	family: func(cross bool) string {
		if cross {
			return "torchrec DLRM_DCN"
		}
		return "torchrec DLRM"
	},
	expect:     "sparse_arch.embedding_bag_collection.embedding_bags.NAME.weight, dense_arch.model._mlp.N._linear.{weight,bias}, inter_arch.crossnet.{V_kernels,W_kernels,bias}.N, over_arch.model.0._mlp.N._linear.{weight,bias} or over_arch.model.1.{weight,bias}",
	tableHint:  "sparse_arch.embedding_bag_collection.embedding_bags.NAME.weight",
	bottomHint: "dense_arch.model._mlp.N._linear.weight",
	topHint:    "over_arch.model.1.weight",
}

// crossScheme finds TorchRec's LowRankCrossNet: V_kernels.l [r, N],
// W_kernels.l [N, r], bias.l [N] (or [N, 1], as older TorchRec saves it).
// rq's quantized files store the layers as any FC layer, under their
// names: V_kernels.l.weight, W_kernels.l.weight and W_kernels.l.bias.
type crossScheme struct{}

var (
	crossV    = regexp.MustCompile(`^inter_arch\.crossnet\.V_kernels\.(\d+)(\.weight)?$`)
	crossW    = regexp.MustCompile(`^inter_arch\.crossnet\.W_kernels\.(\d+)(\.weight)?$`)
	crossBias = []*regexp.Regexp{
		regexp.MustCompile(`^inter_arch\.crossnet\.bias\.(\d+)$`),
		regexp.MustCompile(`^inter_arch\.crossnet\.W_kernels\.(\d+)\.bias$`),
	}
)

// crossTensors are a file's cross-network tensors by layer index, with
// each kernel's layer name.
type crossTensors struct {
	v, w, b        map[int]*Tensor
	vName, wName   map[int]string
	anyCrossTensor bool
}

// match files t (its name without the scheme's prefix is name) into ct if
// it is a cross-network tensor.
func (*crossScheme) match(file string, t *Tensor, name string, ct *crossTensors) (bool, error) {
	if ct.v == nil {
		*ct = crossTensors{v: map[int]*Tensor{}, w: map[int]*Tensor{}, b: map[int]*Tensor{}, vName: map[int]string{}, wName: map[int]string{}}
	}
	index := func(s string) (int, error) {
		k, err := strconv.Atoi(s)
		if err != nil || k > 1<<20 {
			return 0, &FormatError{File: file, Tensor: t.Name, Msg: "cross layer index out of range"}
		}
		return k, nil
	}
	for _, kv := range []struct {
		re    *regexp.Regexp
		dst   map[int]*Tensor
		names map[int]string
	}{{crossV, ct.v, ct.vName}, {crossW, ct.w, ct.wName}} {
		if m := kv.re.FindStringSubmatch(name); m != nil {
			k, err := index(m[1])
			if err != nil {
				return true, err
			}
			kv.dst[k], kv.names[k] = t, strings.TrimSuffix(t.Name, ".weight")
			ct.anyCrossTensor = true
			return true, nil
		}
	}
	for _, re := range crossBias {
		if m := re.FindStringSubmatch(name); m != nil {
			k, err := index(m[1])
			if err != nil {
				return true, err
			}
			if prev := ct.b[k]; prev != nil {
				return true, &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("a second bias for cross layer %d (%s is the first)", k, prev.Name)}
			}
			ct.b[k] = t
			ct.anyCrossTensor = true
			return true, nil
		}
	}
	return false, nil
}

// torchrecInteraction sets net's interaction: the cross network when the
// file has one (layers 0..L-1, each with V, W and bias, shapes consistent
// with the feature row), else the dot in TorchRec's order. choice, when
// not "", is what the user or the file's metadata says it is, and must
// agree. own is told the tensors of each cross layer (see buildNetwork).
func (sc *scheme) torchrecInteraction(file string, net *model.Network, ct *crossTensors, withWeights bool, choice string, own func(string, *Tensor)) error {
	d := net.EmbDim()
	n := d
	dims := make([]int, len(net.Tables))
	for i, t := range net.Tables {
		if t.Dim != d {
			what := "dot"
			if ct.anyCrossTensor {
				what = "DCN cross network"
			}
			return &FormatError{File: file, Tensor: t.Name + ".weight", Msg: fmt.Sprintf("embedding width %d differs from the dense arch's output width %d (%s); TorchRec's %s needs them equal", t.Dim, d, net.Bottom[len(net.Bottom)-1].Name, what)}
		}
		dims[i] = t.Dim
		n += t.Dim
	}
	var inter model.Interaction = sc.interactions[0]
	if ct.anyCrossTensor {
		layers := max(len(ct.v), len(ct.w), len(ct.b))
		var vs, ws []*model.Linear
		for l := range layers {
			v, w, b := ct.v[l], ct.w[l], ct.b[l]
			switch {
			case v == nil:
				return &FormatError{File: file, Msg: fmt.Sprintf("cross layer %d has no V kernel (inter_arch.crossnet.V_kernels.%d); the cross layers must be numbered 0..%d, each with V_kernels, W_kernels and bias", l, l, layers-1)}
			case w == nil:
				return &FormatError{File: file, Tensor: v.Name, Msg: fmt.Sprintf("cross layer %d has no W kernel (inter_arch.crossnet.W_kernels.%d)", l, l)}
			case b == nil:
				return &FormatError{File: file, Tensor: w.Name, Msg: fmt.Sprintf("cross layer %d has no bias (inter_arch.crossnet.bias.%d)", l, l)}
			}
			if len(v.Shape) != 2 || v.Shape[0] < 1 || v.Shape[1] != n {
				return &FormatError{File: file, Tensor: v.Name, Msg: fmt.Sprintf("shape %v, want [rank, %d]: the feature row (%s output and %d tables, each %d wide) is %d wide", v.Shape, n, net.Bottom[len(net.Bottom)-1].Name, len(net.Tables), d, n)}
			}
			r := v.Shape[0]
			if len(w.Shape) != 2 || w.Shape[0] != n || w.Shape[1] != r {
				return &FormatError{File: file, Tensor: w.Name, Msg: fmt.Sprintf("shape %v, want [%d, %d] to match %s %v", w.Shape, n, r, v.Name, v.Shape)}
			}
			if !(len(b.Shape) == 1 && b.Shape[0] == n) && !(len(b.Shape) == 2 && b.Shape[0] == n && b.Shape[1] == 1) {
				return &FormatError{File: file, Tensor: b.Name, Msg: fmt.Sprintf("shape %v, want [%d] or [%d, 1] to match %s %v", b.Shape, n, n, w.Name, w.Shape)}
			}
			vl := &model.Linear{Name: ct.vName[l], In: n, Out: r, Act: model.ActNone}
			wl := &model.Linear{Name: ct.wName[l], In: r, Out: n, Act: model.ActNone}
			if withWeights {
				var err error
				if vl.Weight, err = weights(file, v); err != nil {
					return err
				}
				if wl.Weight, err = weights(file, w); err != nil {
					return err
				}
				if wl.Bias, err = weights(file, b); err != nil {
					return err
				}
			}
			own(vl.Name, v)
			own(wl.Name, w)
			own(wl.Name, b)
			vs, ws = append(vs, vl), append(ws, wl)
		}
		inter = model.NewCrossNet(vs, ws)
	}
	if choice != "" && choice != inter.String() {
		return &FormatError{File: file, Msg: fmt.Sprintf("the interaction chosen (%s, by --interaction or the file's rq.interaction) is not this TorchRec model's: its tensors give %s", choice, inter)}
	}
	if want, got := net.Top[0].In, inter.Width(d, dims); want != got {
		return &FormatError{File: file, Tensor: net.Top[0].Name + ".weight", Msg: fmt.Sprintf("takes %d inputs, but the %s interaction of a %d-wide dense arch output and %d tables gives %d", want, inter, d, len(dims), got)}
	}
	net.Interaction = inter
	return nil
}

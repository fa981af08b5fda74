package modelio

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rqtools/rq/model"
)

// scheme maps one family of tensor names onto a DLRM. A layer's name is
// its tensor's name without ".weight"/".bias" (prefix included), which is
// the name rq uses everywhere: plans, ranges and reports name layers as the
// file does.
type scheme struct {
	name string
	// roots, when set, are the names the family's tensors start with once
	// a common prefix is stripped (TorchRec's training wrapper saves
	// "model.sparse_arch...."): the prefix is what precedes the first
	// tensor's root, and the patterns match the names without it.
	roots []string
	// table matches an embedding table's weight; group 1 is its key.
	table *regexp.Regexp
	// tablesByNumber: feature k is the table whose name has the k-th
	// smallest trailing number (t_cat_10 after t_cat_9), or the k-th in
	// the file when the names do not all carry distinct numbers. Without
	// it the key is the feature's index, 0..T-1 without gaps.
	tablesByNumber bool
	// bottom and top are the MLPs' layers, in order: a layer matching an
	// earlier pattern runs before one matching a later one, and within a
	// pattern by its "i" group. Group "p" is weight or bias.
	bottom, top []*regexp.Regexp
	// cross, when set, finds a DCN-v2 cross network (torchrec.go).
	cross *crossScheme
	// interactions are the weightless interactions the top MLP's width
	// chooses among, in the order tried; a cross network, when the file
	// has one, is the interaction instead.
	interactions []model.InteractionOp
	// family names the model family for inspect: the scheme's name, and
	// the architecture (given whether it has a cross network).
	family func(cross bool) string
	// expect and the hints name the tensors the scheme wants, in errors.
	expect                         string
	tableHint, bottomHint, topHint string
}

// schemes are tried in order; the first whose patterns match a tensor of the
// file is used. Another layout is another row (and, for a new
// architecture, its Interaction).
var schemes = []scheme{
	{
		name:         "facebookresearch/dlrm",
		table:        regexp.MustCompile(`^emb_l\.(\d+)\.weight$`),
		bottom:       []*regexp.Regexp{regexp.MustCompile(`^bot_l\.(?P<i>\d+)\.(?P<p>weight|bias)$`)},
		top:          []*regexp.Regexp{regexp.MustCompile(`^top_l\.(?P<i>\d+)\.(?P<p>weight|bias)$`)},
		interactions: []model.InteractionOp{model.Dot, model.DotSelf, model.Cat},
		family:       func(bool) string { return "facebookresearch/dlrm" },
		expect:       "emb_l.N.weight, bot_l.N.{weight,bias} or top_l.N.{weight,bias}",
		tableHint:    "emb_l.N.weight",
		bottomHint:   "bot_l.N.weight",
		topHint:      "top_l.N.weight",
	},
	torchrecScheme,
}

// BuildNetwork infers a DLRM from a state dict's tensors. Tensors are viewed
// without copying where possible (F32, aligned), so the network may alias the
// file's memory: keep the file open while the network is in use.
// file names the source in errors. A top MLP width that fits more than one
// interaction is an *AmbiguousInteractionError: use BuildNetworkWith.
func BuildNetwork(file string, tensors []Tensor) (*model.Network, string, error) {
	return buildNetwork(file, tensors, true, "", nil)
}

// BuildNetworkWith is BuildNetwork with the user's choices: o.Interaction,
// when set, picks the interaction instead of inferring it (it must still fit
// the top MLP's width).
func BuildNetworkWith(file string, tensors []Tensor, o LoadOptions) (*model.Network, string, error) {
	return buildNetwork(file, tensors, true, o.Interaction, nil)
}

// buildStructure infers the network's layers and shapes only (no weights,
// no validation of weight lengths): quantized files fill the weights
// themselves. recorded is the interaction the file's metadata names (rq
// writes rq.interaction), which settles a width that fits several.
func buildStructure(file string, tensors []Tensor, recorded string) (*model.Network, string, error) {
	return buildNetwork(file, tensors, false, recorded, nil)
}

// LoadOptions are what a user may choose about how a model file is read.
// The zero value infers everything.
type LoadOptions struct {
	// Interaction is "dot", "dot-self" or "cat" to choose the interaction,
	// or "" to infer it from the top MLP's input width (an error when the
	// width fits more than one).
	Interaction string
}

// Interactions are the names ParseInteraction accepts, in the order rq
// tries them.
var Interactions = []string{"dot", "dot-self", "cat"}

// ParseInteraction maps an interaction's name (as --interaction and the
// rq.interaction metadata spell it) to its op.
func ParseInteraction(s string) (model.InteractionOp, error) {
	for _, op := range []model.InteractionOp{model.Dot, model.DotSelf, model.Cat} {
		if op.String() == s {
			return op, nil
		}
	}
	return 0, fmt.Errorf("unknown interaction %q, want one of %s", s, strings.Join(Interactions, ", "))
}

// AmbiguousInteractionError reports a top MLP whose input width fits more
// than one interaction: the file does not say which one the model was
// trained with, and guessing would give a wrong network silently.
type AmbiguousInteractionError struct {
	File       string
	Tensor     string // the top MLP's first weight
	Width      int
	Candidates []model.InteractionOp
}

func (e *AmbiguousInteractionError) Error() string {
	names := make([]string, len(e.Candidates))
	for i, op := range e.Candidates {
		names[i] = op.String()
	}
	return fmt.Sprintf("%s: tensor %q: its %d inputs fit the %s interactions alike, and the file does not say which the model was trained with; choose with --interaction %s",
		e.File, e.Tensor, e.Width, strings.Join(names, " and "), strings.Join(names, "|"))
}

// buildNetwork infers the network; interaction, when not "", is the
// interaction to use instead of inferring it. own, when not nil, is told
// which layer each tensor holds (a weight, a bias, a table), for what
// reports a layer's bytes: the scheme knows, where a name's prefix may not
// (TorchRec keeps a cross layer's bias apart, inter_arch.crossnet.bias.N).
func buildNetwork(file string, tensors []Tensor, withWeights bool, interaction string, own func(layer string, t *Tensor)) (*model.Network, string, error) {
	if own == nil {
		own = func(string, *Tensor) {}
	}
	var sc *scheme
	var prefix string
	for i := range schemes {
		p := schemes[i].prefix(tensors)
		for j := range tensors {
			name, ok := strings.CutPrefix(tensors[j].Name, p)
			if ok && (schemes[i].table.MatchString(name) || schemes[i].matchFC(schemes[i].bottom, name) != nil) {
				sc, prefix = &schemes[i], p
				break
			}
		}
		if sc != nil {
			break
		}
	}
	if sc == nil {
		names := make([]string, 0, 5)
		for i := 0; i < len(tensors) && i < 5; i++ {
			names = append(names, tensors[i].Name)
		}
		return nil, "", &UnsupportedError{File: file, What: fmt.Sprintf("no known DLRM naming scheme matches the tensors (first: %s); rq knows facebookresearch/dlrm names (emb_l.N.weight, bot_l.N.weight, top_l.N.weight) and TorchRec's (sparse_arch.embedding_bag_collection.embedding_bags.NAME.weight, dense_arch.model._mlp.N._linear.weight, over_arch.model.*, inter_arch.crossnet.*)", strings.Join(names, ", "))}
	}

	type fc struct {
		w, b   *Tensor
		prefix string
	}
	type tableT struct {
		key string
		t   *Tensor
	}
	var tables []tableT
	bottom, top := map[[2]int]*fc{}, map[[2]int]*fc{}
	var cross crossTensors
	for i := range tensors {
		t := &tensors[i]
		name, ok := strings.CutPrefix(t.Name, prefix)
		if !ok {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("not part of a %s network: its other tensors start with %q", sc.name, prefix)}
		}
		if m := sc.table.FindStringSubmatch(name); m != nil {
			tables = append(tables, tableT{m[1], t})
			continue
		}
		if sc.cross != nil {
			if ok, err := sc.cross.match(file, t, name, &cross); ok || err != nil {
				if err != nil {
					return nil, "", err
				}
				continue
			}
		}
		var dst map[[2]int]*fc
		var m *fcMatch
		if m = sc.matchFC(sc.bottom, name); m != nil {
			dst = bottom
		} else if m = sc.matchFC(sc.top, name); m != nil {
			dst = top
		} else {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("not part of a %s network (expected %s)", sc.name, sc.expect)}
		}
		if m.err {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: "layer index out of range"}
		}
		l := dst[m.key]
		if l == nil {
			l = &fc{prefix: strings.TrimSuffix(t.Name, "."+m.part)}
			dst[m.key] = l
		}
		if m.part == "weight" {
			l.w = t
		} else {
			l.b = t
		}
	}

	net := &model.Network{}
	ordered, err := sc.orderTables(file, len(tables), func(k int) (string, *Tensor) { return tables[k].key, tables[k].t })
	if err != nil {
		return nil, "", err
	}
	for _, t := range ordered {
		if len(t.Shape) != 2 || t.Shape[0] < 1 || t.Shape[1] < 1 {
			return nil, "", &FormatError{File: file, Tensor: t.Name, Msg: fmt.Sprintf("embedding table has shape %v, want [rows, dim]", t.Shape)}
		}
		var w []float32
		if withWeights {
			var err error
			if w, err = weights(file, t); err != nil {
				return nil, "", err
			}
		}
		net.Tables = append(net.Tables, &model.Table{Name: strings.TrimSuffix(t.Name, ".weight"), Rows: int64(t.Shape[0]), Dim: t.Shape[1], Weight: w})
		own(net.Tables[len(net.Tables)-1].Name, t)
	}
	mlp := func(ls map[[2]int]*fc, what string) ([]*model.Linear, error) {
		keys := make([][2]int, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]int) int {
			if a[0] != b[0] {
				return a[0] - b[0]
			}
			return a[1] - b[1]
		})
		out := make([]*model.Linear, 0, len(keys))
		for _, k := range keys {
			l := ls[k]
			if l.w == nil || l.b == nil {
				missing := l.prefix + ".weight"
				if l.w != nil {
					missing = l.prefix + ".bias"
				}
				return nil, &FormatError{File: file, Tensor: missing, Msg: "missing (each " + what + " layer needs a weight and a bias)"}
			}
			if len(l.w.Shape) != 2 || l.w.Shape[0] < 1 || l.w.Shape[1] < 1 {
				return nil, &FormatError{File: file, Tensor: l.w.Name, Msg: fmt.Sprintf("shape %v, want [out, in]", l.w.Shape)}
			}
			if len(l.b.Shape) != 1 || l.b.Shape[0] != l.w.Shape[0] {
				return nil, &FormatError{File: file, Tensor: l.b.Name, Msg: fmt.Sprintf("shape %v, want [%d] to match %s %v", l.b.Shape, l.w.Shape[0], l.w.Name, l.w.Shape)}
			}
			var w, b []float32
			if withWeights {
				var err error
				if w, err = weights(file, l.w); err != nil {
					return nil, err
				}
				if b, err = weights(file, l.b); err != nil {
					return nil, err
				}
			}
			out = append(out, &model.Linear{Name: l.prefix, In: l.w.Shape[1], Out: l.w.Shape[0], Act: model.ActReLU, Weight: w, Bias: b})
			own(l.prefix, l.w)
			own(l.prefix, l.b)
		}
		return out, nil
	}
	if net.Bottom, err = mlp(bottom, "bottom MLP"); err != nil {
		return nil, "", err
	}
	if net.Top, err = mlp(top, "top MLP"); err != nil {
		return nil, "", err
	}
	if len(net.Bottom) == 0 {
		return nil, "", &FormatError{File: file, Msg: "no bottom MLP (" + sc.bottomHint + ") found"}
	}
	if len(net.Top) == 0 {
		return nil, "", &FormatError{File: file, Msg: "no top MLP (" + sc.topHint + ") found"}
	}
	if len(net.Tables) == 0 {
		return nil, "", &FormatError{File: file, Msg: "no embedding tables (" + sc.tableHint + ") found"}
	}
	net.Top[len(net.Top)-1].Act = model.ActSigmoid
	net.NumDense = net.Bottom[0].In

	if sc.cross != nil {
		// TorchRec: the file says which interaction it has (a cross
		// network's tensors, or none: the dot), so no width can be
		// ambiguous; a choice must agree with it.
		if err := sc.torchrecInteraction(file, net, &cross, withWeights, interaction, own); err != nil {
			return nil, "", err
		}
		if withWeights {
			if err := net.Validate(); err != nil {
				return nil, "", &FormatError{File: file, Msg: err.Error()}
			}
		}
		return net, sc.family(len(cross.v) > 0), nil
	}

	// The interaction follows from the top MLP's input width, unless the
	// caller names it. The widths of dot and cat coincide when d = (T+1)/2
	// (T tables of width d), and those of dot-self and cat when
	// T*d = (T+1)(T+2)/2: such a width does not tell them apart.
	d := net.EmbDim()
	dims := make([]int, len(net.Tables))
	var odd *model.Table // the first table narrower or wider than d
	for i, t := range net.Tables {
		dims[i] = t.Dim
		if t.Dim != d && odd == nil {
			odd = t
		}
	}
	sameDims := odd == nil
	want := net.Top[0].In
	topW := net.Top[0].Name + ".weight"
	fits := func(op model.InteractionOp) bool {
		// Dot products need every vector as wide as the bottom output.
		return model.InteractionWidth(op, d, dims) == want && (op == model.Cat || sameDims)
	}
	if interaction != "" {
		op, err := ParseInteraction(interaction)
		if err != nil {
			if !withWeights { // the choice came from the file's metadata
				return nil, "", &FormatError{File: file, Tensor: "__metadata__", Msg: "rq.interaction: " + err.Error()}
			}
			return nil, "", &FormatError{File: file, Msg: err.Error()}
		}
		if !fits(op) {
			msg := fmt.Sprintf("takes %d inputs, but the %s interaction of a %d-wide bottom output and %d tables needs %d", want, op, d, len(dims), model.InteractionWidth(op, d, dims))
			if op != model.Cat && !sameDims {
				msg = fmt.Sprintf("the %s interaction needs every table as wide as the bottom output (%d), but %s is %d wide", op, d, odd.Name, odd.Dim)
			}
			return nil, "", &FormatError{File: file, Tensor: topW, Msg: msg}
		}
		net.Interaction = op
	} else {
		var found []model.InteractionOp
		var tried []string
		for _, op := range []model.InteractionOp{model.Dot, model.DotSelf, model.Cat} {
			if op != model.Cat && !sameDims {
				tried = append(tried, fmt.Sprintf("%s needs every table %d wide, but %s is %d", op, d, odd.Name, odd.Dim))
			} else {
				tried = append(tried, fmt.Sprintf("%s gives %d", op, model.InteractionWidth(op, d, dims)))
			}
			if fits(op) {
				found = append(found, op)
			}
		}
		switch len(found) {
		case 0:
			return nil, "", &FormatError{File: file, Tensor: topW, Msg: fmt.Sprintf(
				"takes %d inputs, which fits no interaction of a %d-wide bottom output and %d tables (%s)", want, d, len(dims), strings.Join(tried, ", "))}
		case 1:
			net.Interaction = found[0]
		default:
			return nil, "", &AmbiguousInteractionError{File: file, Tensor: topW, Width: want, Candidates: found}
		}
	}
	if !withWeights {
		return net, sc.family(false), nil
	}
	if err := net.Validate(); err != nil {
		return nil, "", &FormatError{File: file, Msg: err.Error()}
	}
	return net, sc.family(false), nil
}

// prefix is the common prefix the scheme strips from tensor names: what
// precedes the first tensor's root ("model." for TorchRec's training
// wrapper), or "" for schemes without roots.
func (sc *scheme) prefix(tensors []Tensor) string {
	for _, t := range tensors {
		for _, r := range sc.roots {
			// Roots start at a name's start or after a dot.
			for i := 0; ; {
				if strings.HasPrefix(t.Name[i:], r) {
					return t.Name[:i]
				}
				j := strings.IndexByte(t.Name[i:], '.')
				if j < 0 {
					break
				}
				i += j + 1
			}
		}
	}
	return ""
}

// fcMatch is an MLP tensor: its layer's sort key (pattern, "i" group),
// "weight" or "bias", and err when the index is out of range.
type fcMatch struct {
	key  [2]int
	part string
	err  bool
}

// matchFC matches name against an MLP's patterns.
func (sc *scheme) matchFC(pats []*regexp.Regexp, name string) *fcMatch {
	for rank, re := range pats {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		r := &fcMatch{key: [2]int{rank, 0}}
		if i := re.SubexpIndex("i"); i >= 0 {
			k, err := strconv.Atoi(m[i])
			r.key[1], r.err = k, err != nil || k > 1<<20
		}
		r.part = m[re.SubexpIndex("p")]
		return r
	}
	return nil
}

// orderTables returns the n tables (key and tensor of each, in file order)
// in feature order.
func (sc *scheme) orderTables(file string, n int, at func(int) (string, *Tensor)) ([]*Tensor, error) {
	if !sc.tablesByNumber {
		byIdx := map[int]*Tensor{}
		for i := range n {
			key, t := at(i)
			k, err := strconv.Atoi(key)
			if err != nil || k > 1<<20 {
				return nil, &FormatError{File: file, Tensor: t.Name, Msg: "table index out of range"}
			}
			byIdx[k] = t
		}
		out := make([]*Tensor, 0, len(byIdx))
		for k := 0; k < len(byIdx); k++ {
			t, ok := byIdx[k]
			if !ok {
				return nil, &FormatError{File: file, Msg: fmt.Sprintf("embedding tables are not numbered 0..%d: emb_l.%d.weight is missing", len(byIdx)-1, k)}
			}
			out = append(out, t)
		}
		return out, nil
	}
	type numbered struct {
		num int
		t   *Tensor
	}
	ts := make([]numbered, n)
	seen := map[int]bool{}
	byNumber := true
	for i := range n {
		key, t := at(i)
		ts[i].t = t
		j := len(key)
		for j > 0 && key[j-1] >= '0' && key[j-1] <= '9' {
			j--
		}
		k, err := strconv.Atoi(key[j:])
		if err != nil || seen[k] {
			byNumber = false
		}
		ts[i].num, seen[k] = k, true
	}
	if byNumber {
		slices.SortStableFunc(ts, func(a, b numbered) int { return a.num - b.num })
	}
	out := make([]*Tensor, n)
	for i := range ts {
		out[i] = ts[i].t
	}
	return out, nil
}

// weights returns t as float32 values, aliasing t.Data when it is aligned F32.
func weights(file string, t *Tensor) ([]float32, error) {
	if v, ok := Float32View(t); ok {
		return v, nil
	}
	switch t.DType {
	case F32, F16, BF16, F64:
	default:
		return nil, &UnsupportedError{File: file, What: fmt.Sprintf("tensor %q has dtype %s; fp32 models need floating-point weights", t.Name, t.DType)}
	}
	v, err := Float32s(t)
	if err != nil {
		return nil, &FormatError{File: file, Tensor: t.Name, Msg: err.Error()}
	}
	return v, nil
}

package calibrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// MaxFileSize bounds the ranges.json Read accepts, and with it the memory a
// hostile file can make Read allocate. A real one is tens of kilobytes per
// layer (the histogram and one number per output channel).
const MaxFileSize = 32 << 20

// maxArray bounds every JSON array (a layer's output channels, bins).
const maxArray = 1 << 20

// Read reads and validates a ranges.json written by Write (or by hand):
// the version, every required field, finite numbers, ranges containing 0
// (starting at 0 for ReLU inputs), histograms consistent with the counts,
// min and max, and weight statistics consistent with each other. Errors
// name the file and, when one is at fault, the layer.
func Read(path string) (*Ranges, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Size() > MaxFileSize {
		return nil, &FormatError{File: path, Msg: fmt.Sprintf("file is %d bytes, more than the %d a ranges.json may have", st.Size(), MaxFileSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse is Read on a document in memory; name is used in errors.
func Parse(name string, data []byte) (*Ranges, error) {
	r := &Ranges{File: name}
	if len(data) > MaxFileSize {
		return nil, r.errorf("", "document is %d bytes, more than the %d a ranges.json may have", len(data), MaxFileSize)
	}
	unknown, err := scan(r, data)
	if err != nil {
		return nil, err
	}
	var top struct {
		Version     *int                       `json:"version"`
		ModelSHA256 *string                    `json:"model_sha256"`
		Rows        *string                    `json:"rows"`
		Data        *string                    `json:"data"`
		ShardCount  *int                       `json:"shard_count"`
		Shards      []int                      `json:"shards"`
		Method      *string                    `json:"method"`
		Percentile  *float64                   `json:"percentile"`
		Levels      *int                       `json:"levels"`
		Layers      map[string]json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, r.errorf("", "%v", jsonMsg(err))
	}
	// The version first: a newer file should say so, not fail on a field.
	if top.Version == nil {
		return nil, r.errorf("", "no \"version\": not a ranges.json written by rq calibrate")
	}
	if r.Version = *top.Version; r.Version != Version {
		return nil, r.errorf("", "version %d: this rq reads ranges version %d", r.Version, Version)
	}
	if unknown != nil {
		return nil, unknown
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{{"model_sha256", top.ModelSHA256 != nil}, {"rows", top.Rows != nil}, {"data", top.Data != nil},
		{"method", top.Method != nil}, {"percentile", top.Percentile != nil}, {"levels", top.Levels != nil},
		{"layers", top.Layers != nil}} {
		if !f.ok {
			return nil, r.errorf("", "missing %q", f.name)
		}
	}
	r.ModelSHA256, r.Rows, r.Data, r.Method = *top.ModelSHA256, *top.Rows, *top.Data, *top.Method
	r.Percentile, r.Levels = *top.Percentile, *top.Levels
	if top.ShardCount != nil {
		r.ShardCount, r.Shards = *top.ShardCount, top.Shards
		if r.ShardCount <= 1 {
			return nil, r.errorf("", "shard_count %d: a sharded document has shard_count 2 or more (leave it out when unsharded)", r.ShardCount)
		}
	} else if top.Shards != nil {
		return nil, r.errorf("", "\"shards\" without \"shard_count\"")
	}
	r.Layers = make(map[string]*Layer, len(top.Layers))
	if err := r.validateHeader(); err != nil {
		return nil, err
	}
	if len(top.Layers) == 0 {
		return nil, r.errorf("", "no layers")
	}
	for _, name := range sortedKeys(top.Layers) {
		l, err := r.decodeLayer(name, top.Layers[name])
		if err != nil {
			return nil, err
		}
		if err := r.validateLayer(name, l); err != nil {
			return nil, err
		}
		r.Layers[name] = l
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// wireLayer is a layer as ranges.json holds it; pointers tell a missing
// field from a zero one.
type wireLayer struct {
	FollowsReLU *bool    `json:"follows_relu"`
	Count       *uint64  `json:"count"`
	Zeros       *uint64  `json:"zeros"`
	NonFinite   *uint64  `json:"nonfinite"`
	NaN         *uint64  `json:"nan"`
	PosInf      *uint64  `json:"posinf"`
	NegInf      *uint64  `json:"neginf"`
	Min         *float32 `json:"min"`
	Max         *float32 `json:"max"`
	Histogram   *struct {
		Lo   *float64 `json:"lo"`
		Hi   *float64 `json:"hi"`
		Bins []uint64 `json:"bins"`
	} `json:"histogram"`
	Ranges *struct {
		MinMax     []float32 `json:"minmax"`
		Percentile []float32 `json:"percentile"`
		L2         []float32 `json:"l2"`
		Entropy    []float32 `json:"entropy"`
	} `json:"ranges"`
	Weight *struct {
		AbsMax []float32 `json:"absmax"`
		Min    []float32 `json:"min"`
		Max    []float32 `json:"max"`
	} `json:"weight"`
}

func (r *Ranges) decodeLayer(name string, raw json.RawMessage) (*Layer, error) {
	bad := func(format string, args ...any) error { return r.errorf(name, format, args...) }
	var w wireLayer
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, bad("%v", jsonMsg(err))
	}
	missing := func(field string) error { return bad("missing %q", field) }
	switch {
	case w.FollowsReLU == nil:
		return nil, missing("follows_relu")
	case w.Count == nil:
		return nil, missing("count")
	case w.Zeros == nil:
		return nil, missing("zeros")
	case w.NonFinite == nil:
		return nil, missing("nonfinite")
	case w.NaN == nil:
		return nil, missing("nan")
	case w.PosInf == nil:
		return nil, missing("posinf")
	case w.NegInf == nil:
		return nil, missing("neginf")
	case w.Min == nil:
		return nil, missing("min")
	case w.Max == nil:
		return nil, missing("max")
	case w.Histogram == nil:
		return nil, missing("histogram")
	case w.Histogram.Lo == nil:
		return nil, missing("histogram.lo")
	case w.Histogram.Hi == nil:
		return nil, missing("histogram.hi")
	case w.Histogram.Bins == nil:
		return nil, missing("histogram.bins")
	case w.Ranges == nil:
		return nil, missing("ranges")
	case w.Weight == nil:
		return nil, missing("weight")
	case w.Weight.AbsMax == nil:
		return nil, missing("weight.absmax")
	case w.Weight.Min == nil:
		return nil, missing("weight.min")
	case w.Weight.Max == nil:
		return nil, missing("weight.max")
	}
	nf, c1 := bits.Add64(*w.NaN, *w.PosInf, 0)
	nf, c2 := bits.Add64(nf, *w.NegInf, 0)
	if c1|c2 != 0 || nf != *w.NonFinite {
		return nil, bad("nonfinite is %d, but nan + posinf + neginf = %d + %d + %d", *w.NonFinite, *w.NaN, *w.PosInf, *w.NegInf)
	}
	h, err := histFromWire(*w.Histogram.Lo, *w.Histogram.Hi, w.Histogram.Bins, *w.Count, *w.Zeros, *w.Min, *w.Max)
	if err != nil {
		return nil, bad("%v", err)
	}
	h.nan, h.posInf, h.negInf = *w.NaN, *w.PosInf, *w.NegInf
	l := &Layer{FollowsReLU: *w.FollowsReLU, Hist: h, Ranges: map[string][2]float32{},
		Weight: WeightStats{AbsMax: w.Weight.AbsMax, Min: w.Weight.Min, Max: w.Weight.Max}}
	for _, m := range []struct {
		name string
		v    []float32
	}{{MethodMinMax, w.Ranges.MinMax}, {MethodPercentile, w.Ranges.Percentile}, {MethodL2, w.Ranges.L2}, {MethodEntropy, w.Ranges.Entropy}} {
		if m.v == nil {
			return nil, missing("ranges." + m.name)
		}
		if len(m.v) != 2 {
			return nil, bad("ranges.%s has %d numbers, want 2 ([lo, hi])", m.name, len(m.v))
		}
		l.Ranges[m.name] = [2]float32{m.v[0], m.v[1]}
	}
	return l, nil
}

// histFromWire rebuilds a Histogram from its stored form, checking that it
// is one Observe could have built: the bin width a power of two in range,
// the window on the grid and holding 0, min and max, every count inside
// [bin(min), bin(max)] with those two bins non-empty, the counts summing to
// count, and the zeros fitting in the bin of 0.
func histFromWire(lo, hi float64, counts []uint64, count, zeros uint64, mn, mx float32) (*Histogram, error) {
	n := len(counts)
	if n < MinBins || n > MaxBins {
		return nil, fmt.Errorf("histogram has %d bins: want %d..%d", n, MinBins, MaxBins)
	}
	if !finite(lo) || !finite(hi) || !(hi > lo) {
		return nil, fmt.Errorf("histogram [lo, hi] = [%v, %v]: want finite lo < hi", lo, hi)
	}
	frac, e := math.Frexp((hi - lo) / float64(n))
	exp := e - 1
	if frac != 0.5 || exp < minExp || exp > maxExp {
		return nil, fmt.Errorf("histogram bin width (hi-lo)/%d = %v: want a power of two in [2^%d, 2^%d]", n, (hi-lo)/float64(n), minExp, maxExp)
	}
	sf := math.Ldexp(lo, -exp)
	if sf != math.Trunc(sf) || sf > 0 || sf < -float64(n) || math.Ldexp(sf+float64(n), exp) != hi {
		return nil, fmt.Errorf("histogram lo %v is not a multiple of the bin width %v at or below 0 within %d bins of it", lo, math.Ldexp(1, exp), n)
	}
	start := int64(sf)
	if count == 0 {
		return nil, fmt.Errorf("count is 0: no finite input values were observed")
	}
	if !finite(float64(mn)) || !finite(float64(mx)) || mn > mx {
		return nil, fmt.Errorf("min %v and max %v: want finite min <= max", mn, mx)
	}
	a, b := min(0, float64(mn)), max(0, float64(mx))
	ia, ib := floorIdx(a, exp), floorIdx(b, exp)
	if ia < start || ib >= start+int64(n) {
		return nil, fmt.Errorf("min %v and max %v (with 0) do not fit the histogram's [%v, %v)", mn, mx, lo, hi)
	}
	j0, j1 := int(floorIdx(float64(mn), exp)-start), int(floorIdx(float64(mx), exp)-start)
	var sum uint64
	for j, c := range counts {
		if c != 0 && (j < j0 || j > j1) {
			return nil, fmt.Errorf("histogram bin %d ([%v, %v)) counts %d values, outside [min, max] = [%v, %v]", j, math.Ldexp(float64(start+int64(j)), exp), math.Ldexp(float64(start+int64(j)+1), exp), c, mn, mx)
		}
		var carry uint64
		if sum, carry = bits.Add64(sum, c, 0); carry != 0 {
			return nil, fmt.Errorf("histogram counts add up to more than 2^64")
		}
	}
	if sum != count {
		return nil, fmt.Errorf("histogram counts add up to %d, but count is %d", sum, count)
	}
	if counts[j0] == 0 || counts[j1] == 0 {
		return nil, fmt.Errorf("the histogram bins of min %v and max %v must not be empty", mn, mx)
	}
	if zeros > 0 && (mn > 0 || mx < 0 || zeros > counts[-start]) {
		return nil, fmt.Errorf("zeros is %d, but the bin of 0 counts %d and [min, max] = [%v, %v]", zeros, counts[-start], mn, mx)
	}
	h := &Histogram{counts: make([]uint64, n), scratch: make([]uint64, n), count: count, zeros: zeros, min: mn, max: mx}
	h.setGrid(exp, start)
	copy(h.counts, counts)
	// Observe starts the window at the bin of min(0, min): shift to that
	// canonical place so equal data give equal histograms, whoever wrote
	// the file.
	h.regrid(exp, ia)
	return h, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// jsonMsg makes encoding/json's errors read as ranges.json field errors.
func jsonMsg(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Sprintf("%s: got a JSON %s, want %s", field, te.Value, wantType(te.Type))
	}
	return err.Error()
}

func wantType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return wantType(t.Elem())
	case reflect.Slice, reflect.Array:
		return "an array of numbers"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Uint64:
		return "a non-negative integer"
	case reflect.Int:
		return "an integer"
	case reflect.Float32:
		return "a number within float32 range"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

// Allowed keys by where an object sits.
var (
	topKeys   = []string{"version", "model_sha256", "rows", "data", "shard_count", "shards", "method", "percentile", "levels", "layers"}
	layerKeys = []string{"follows_relu", "count", "zeros", "nonfinite", "nan", "posinf", "neginf", "min", "max", "histogram", "ranges", "weight"}
	subKeys   = map[string][]string{
		"histogram": {"lo", "hi", "bins"},
		"ranges":    Methods,
		"weight":    {"absmax", "min", "max"},
	}
)

type frame struct {
	obj     bool
	wantKey bool
	key     string // object: the current key
	keys    map[string]bool
	n       int // array: elements so far
}

// scan walks the JSON token by token before any decoding so that syntax
// errors (NaN, a truncated file), duplicate keys (which encoding/json would
// silently resolve to the last), oversized arrays and misspelt keys are
// reported with the layer and field they are in. Misspelt keys come back
// apart, to be reported after the version check.
func scan(r *Ranges, data []byte) (unknown, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*frame
	done := false
	where := func() (layer, field string) {
		var path []string
		for _, f := range stack {
			switch {
			case !f.obj:
				path = append(path, "["+strconv.Itoa(f.n)+"]")
			case !f.wantKey:
				path = append(path, f.key)
			}
		}
		if len(path) >= 2 && path[0] == "layers" && len(stack) >= 2 && stack[1].obj {
			layer, path = path[1], path[2:]
		}
		for i, p := range path {
			if i > 0 && !strings.HasPrefix(p, "[") {
				field += "."
			}
			field += p
		}
		return layer, field
	}
	fail := func(msg string) error {
		layer, field := where()
		if field != "" {
			msg = field + ": " + msg
		}
		return &FormatError{File: r.name(), Layer: layer, Msg: msg}
	}
	// valueDone moves the enclosing container past a finished value.
	valueDone := func() {
		if len(stack) == 0 {
			done = true
			return
		}
		if f := stack[len(stack)-1]; f.obj {
			f.wantKey = true
		} else {
			f.n++
		}
	}
	for {
		tok, terr := dec.Token()
		if terr == io.EOF {
			if !done {
				if len(stack) == 0 {
					return nil, r.errorf("", "empty document: want a JSON object")
				}
				return nil, fail("unexpected end of file (truncated?)")
			}
			return unknown, nil
		}
		if terr != nil {
			// The decoder's offsets are relative to the value it was
			// reading: a whole-document check gives the absolute one.
			if se := new(json.SyntaxError); errors.As(terr, &se) {
				if e2 := json.Unmarshal(data, new(json.RawMessage)); e2 != nil {
					terr = e2
				}
			}
			return nil, fail(syntaxMsg(terr, data))
		}
		if done {
			return nil, r.errorf("", "%s: data after the end of the JSON object", lineCol(data, dec.InputOffset()))
		}
		if len(stack) == 0 {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return nil, r.errorf("", "want a JSON object, found %v", tok)
			}
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if top.keys[key] {
				top.wantKey = false
				top.key = key
				return nil, fail("duplicate key")
			}
			top.keys[key] = true
			top.key, top.wantKey = key, false
			if allowed := allowedKeys(stack); allowed != nil && !contains(allowed, key) && unknown == nil {
				unknown = fail(fmt.Sprintf("unknown key (want one of %s)", strings.Join(allowed, ", ")))
			}
			if len(stack) == 2 && stack[0].key == "layers" && key == "" {
				return nil, fail("empty layer name")
			}
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{obj: true, wantKey: true, keys: map[string]bool{}})
		case '[':
			stack = append(stack, &frame{})
		case ']':
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			if top != nil && !top.obj && top.n >= maxArray {
				return nil, fail(fmt.Sprintf("array longer than %d elements", maxArray))
			}
			valueDone()
		}
	}
}

// allowedKeys is the key set of the object on top of the stack, or nil
// when any key goes (the layer names).
func allowedKeys(stack []*frame) []string {
	switch len(stack) {
	case 1:
		return topKeys
	case 2:
		return nil
	case 3:
		if stack[0].key == "layers" {
			return layerKeys
		}
	case 4:
		if stack[0].key == "layers" {
			return subKeys[stack[2].key]
		}
	}
	return nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// syntaxMsg phrases a JSON syntax error with its line and column, and says
// why NaN and Infinity (which Python's json module writes) are refused.
func syntaxMsg(err error, data []byte) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err.Error()
	}
	// Offset counts the offending byte: point at it.
	msg := lineCol(data, se.Offset-1) + ": " + se.Error()
	if strings.Contains(msg, "'N'") || strings.Contains(msg, "'I'") || strings.Contains(msg, "in numeric literal") {
		msg += " (NaN and Infinity are not JSON numbers: every value in ranges.json must be finite)"
	}
	return msg
}

// lineCol gives a byte offset as "line L, column C" (1-based).
func lineCol(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

package calibrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/rqtools/rq/internal/strictjson"
)

// MaxFileSize bounds the ranges.json Read accepts, and with it the memory a
// hostile file can make Read allocate (at most 8 bytes of histogram or
// weights per 2 bytes of file). The largest ranges.json rq writes for a real
// model is about 1 MiB: criteo-18k's 7 layers at the largest --bins
// (65,536) measure 1,092,366 bytes, 98 KB at the default 2,048
// (TestRangesSizeCriteo measures it); the cap is 30 times that.
//
// Version 3 adds each embedding table's hot rows: at most MaxHot pairs of
// about 22 bytes for 11-digit rows and counts, 1.4 MB a table, so a model
// of 26 tables (Criteo's) writes up to 37 MB. The cap, 64 MiB, holds that
// with room for the largest histograms; Encode refuses a larger document
// rather than write one Read would refuse. parseHot allocates 16 bytes
// per pair of at least 6 bytes of file.
const MaxFileSize = 64 << 20

// rangesVersions are the ranges.json versions Read understands: 1 (no
// digest; a calibration shard of version 1 is refused, see Parse), 2 (no
// "tables") and 3.
var rangesVersions = []int{1, 2, Version}

var rangesOptions = strictjson.Options{Kind: "ranges", Versions: rangesVersions, MaxBytes: MaxFileSize}

// Read reads and validates a ranges.json written by Write (or by hand):
// strict JSON (no key twice, no unknown or wrongly cased key, nothing after
// the object: internal/strictjson), the version, every required field,
// finite numbers, histograms consistent with the counts, min and max,
// ranges containing 0 (starting at 0 for ReLU inputs) and lying within
// what the histogram observed, weight statistics consistent with each
// other, and the digest (see Digest). Errors name the file and, when one
// is at fault, the layer.
func Read(path string) (*Ranges, error) {
	r := &Ranges{File: path}
	var top wireDoc
	if err := strictjson.ReadFile(path, &top, rangesOptions); err != nil {
		return nil, r.fromStrict(err)
	}
	return r.fromWire(&top)
}

// Parse is Read on a document in memory; name is used in errors.
func Parse(name string, data []byte) (*Ranges, error) {
	r := &Ranges{File: name}
	var top wireDoc
	if err := strictjson.Decode(r.name(), data, &top, rangesOptions); err != nil {
		return nil, r.fromStrict(err)
	}
	return r.fromWire(&top)
}

// wireDoc is ranges.json as written; pointers tell a missing field from a
// zero one.
type wireDoc struct {
	Version     *int                  `json:"version"`
	ModelSHA256 *string               `json:"model_sha256"`
	Rows        *string               `json:"rows"`
	Data        *string               `json:"data"`
	ShardCount  *int                  `json:"shard_count"`
	Shards      []int                 `json:"shards"`
	Method      *string               `json:"method"`
	Percentile  *float64              `json:"percentile"`
	Levels      *int                  `json:"levels"`
	Digest      *string               `json:"digest"`
	Layers      map[string]*wireLayer `json:"layers"`
	Tables      map[string]*wireTable `json:"tables"`
}

// wireTable is a table's access counts as ranges.json holds them. Hot is
// decoded by parseHot, which bounds what it allocates.
type wireTable struct {
	Rows       *int64          `json:"rows"`
	Lookups    *uint64         `json:"lookups"`
	Exact      *bool           `json:"exact"`
	ErrorBound *uint64         `json:"error_bound"`
	Hot        json.RawMessage `json:"hot"`
}

// fromStrict turns a strictjson refusal into a FormatError naming the
// layer, with the path inside it, as the rest of Read's errors do.
func (r *Ranges) fromStrict(err error) error {
	var se *strictjson.Error
	if !errors.As(err, &se) {
		return err // the file could not be read
	}
	fe := &FormatError{File: se.File, Msg: se.Msg, Err: se.Err}
	path := se.Path
	if len(path) >= 2 && path[0].Name == "layers" && !path[0].IsKey && path[1].IsKey {
		fe.Layer, path = path[1].Name, path[2:]
	}
	if len(path) > 0 {
		fe.Msg = path.String() + ": " + fe.Msg
	}
	return fe
}

func (r *Ranges) fromWire(top *wireDoc) (*Ranges, error) {
	version := *top.Version // strictjson checked it is there and known
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
	// Read documents in memory as the version this package writes.
	r.Version = Version
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
	switch {
	case version == 1 && top.Digest != nil:
		return nil, r.errorf("", "\"digest\" in a version 1 document (digests came with version 2)")
	case version == 1 && r.ShardCount > 1:
		return nil, r.errorf("", "a calibration shard of ranges version 1, which carries no digest: shards are intermediates, re-run rq calibrate --shard with this rq")
	case r.ShardCount > 1 && top.Digest == nil:
		return nil, r.errorf("", "missing \"digest\": a calibration shard must carry the digest rq calibrate --shard writes")
	case version < 3 && top.Tables != nil:
		return nil, r.errorf("", "\"tables\" in a version %d document (row access counts came with version 3)", version)
	}
	r.Layers = make(map[string]*Layer, len(top.Layers))
	if err := r.validateHeader(); err != nil {
		return nil, err
	}
	if len(top.Layers) == 0 {
		return nil, r.errorf("", "no layers")
	}
	if _, ok := top.Layers[""]; ok {
		return nil, r.errorf("", "empty layer name")
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
	if top.Tables != nil {
		r.Tables = make(map[string]*TableAccess, len(top.Tables))
		for _, name := range sortedKeys(top.Tables) {
			t, err := r.decodeTable(name, top.Tables[name])
			if err != nil {
				return nil, err
			}
			if err := r.validateTable(name, t); err != nil {
				return nil, err
			}
			r.Tables[name] = t
		}
	}
	if top.Digest != nil {
		// The digest covers the document as written, version included.
		as := *r
		as.Version = version
		if err := as.checkDigest(*top.Digest); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Ranges) decodeTable(name string, w *wireTable) (*TableAccess, error) {
	at := fmt.Sprintf("tables[%q]", name)
	if w == nil {
		return nil, r.errorf("", "%s: null: want an object", at)
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{{"rows", w.Rows != nil}, {"lookups", w.Lookups != nil}, {"exact", w.Exact != nil}, {"error_bound", w.ErrorBound != nil}, {"hot", w.Hot != nil}} {
		if !f.ok {
			return nil, r.errorf("", "%s: missing %q", at, f.name)
		}
	}
	hot, err := parseHot(w.Hot)
	if err != nil {
		return nil, r.errorf("", "%s.hot: %v", at, err)
	}
	return &TableAccess{Rows: *w.Rows, Lookups: *w.Lookups, Exact: *w.Exact, ErrorBound: *w.ErrorBound, HotRows: hot}, nil
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

func (r *Ranges) decodeLayer(name string, w *wireLayer) (*Layer, error) {
	bad := func(format string, args ...any) error { return r.errorf(name, format, args...) }
	if w == nil {
		return nil, bad("null: want an object")
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

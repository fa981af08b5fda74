package calibrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/model"
)

// Version is the ranges.json format version this package writes. Version 2
// added the digest, version 3 the tables' row access counts ("tables");
// Read also reads versions 1 and 2, except version 1 shards.
const Version = 3

// Ranges is a ranges.json document: what calibration saw at every Linear
// layer's input and the quantization range each method chooses from it.
type Ranges struct {
	Version     int
	ModelSHA256 string // sha256 of the model file calibrated, lowercase hex
	Rows        string // the row selection calibrated on, as given (e.g. "0:2000")
	Data        string // the click log calibrated on
	// ShardCount > 1 marks a calibration of some shards of Rows (rq
	// calibrate --shard I/N): Shards lists them, increasing. Merging all N
	// gives the unsharded document.
	ShardCount int
	Shards     []int
	// Method is the default range method (Range with method "").
	Method string
	// Percentile and Levels are the options the stored ranges were computed
	// with (MethodPercentile's p; the quantizer's number of levels).
	Percentile float64
	Levels     int
	// Layers maps Linear layer names ("bot_l.0", "top_l.4") to their stats.
	Layers map[string]*Layer
	// Tables maps embedding table names to their row access counts; nil
	// for a document of version 1 or 2, or one without "tables".
	Tables map[string]*TableAccess
	// File is where the document was read from or last written to, for
	// messages; empty for one built in memory.
	File string
}

// Layer is one Linear layer's calibration.
type Layer struct {
	// FollowsReLU: the input is a ReLU's output; every range starts at 0.
	FollowsReLU bool
	// Hist is the input histogram, with count, min, max and non-finite counts.
	Hist *Histogram
	// Ranges maps every method of Methods to its [lo, hi].
	Ranges map[string][2]float32
	// Weight is the per output channel weight statistics.
	Weight WeightStats
}

// FormatError is a ranges document that is malformed or inconsistent: the
// file, the layer at fault (when one is) and what was expected.
type FormatError struct {
	File  string
	Layer string
	Msg   string
	Err   error // the underlying error, when there is one
}

func (e *FormatError) Unwrap() error { return e.Err }

func (e *FormatError) Error() string {
	if e.Layer != "" {
		return fmt.Sprintf("%s: layer %q: %s", e.File, e.Layer, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (r *Ranges) name() string {
	if r.File != "" {
		return r.File
	}
	return "ranges"
}

func (r *Ranges) errorf(layer, format string, args ...any) error {
	return &FormatError{File: r.name(), Layer: layer, Msg: fmt.Sprintf(format, args...)}
}

// LayerNames lists the layers, sorted.
func (r *Ranges) LayerNames() []string {
	names := make([]string, 0, len(r.Layers))
	for n := range r.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Recompute recomputes every layer's ranges from its histogram with the
// document's Levels and Percentile.
func (r *Ranges) Recompute() error {
	for _, name := range r.LayerNames() {
		l := r.Layers[name]
		if l == nil || l.Hist == nil {
			return r.errorf(name, "no histogram")
		}
		rs, err := computeAll(l.Hist, RangeOptions{Levels: r.Levels, Percentile: r.Percentile, FollowsReLU: l.FollowsReLU})
		if err != nil {
			return r.errorf(name, "%v", err)
		}
		l.Ranges = rs
	}
	return nil
}

// Range is the [lo, hi] that method (the document's default when "") chose
// for a layer's input.
func (r *Ranges) Range(layer, method string) (lo, hi float32, err error) {
	l, ok := r.Layers[layer]
	if !ok || l == nil {
		return 0, 0, fmt.Errorf("%s has no layer %q; it has %s", r.name(), layer, strings.Join(r.LayerNames(), ", "))
	}
	if method == "" {
		method = r.Method
	}
	if !knownMethod(method) {
		return 0, 0, unknownMethod(method)
	}
	rg, ok := l.Ranges[method]
	if !ok {
		return 0, 0, r.errorf(layer, "no %s range (call Recompute)", method)
	}
	return rg[0], rg[1], nil
}

// shortSHA abbreviates a digest for messages.
func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// Check refuses ranges calibrated on another model file than the one whose
// sha256 (hex) is modelSHA.
func (r *Ranges) Check(modelSHA string) error {
	want := strings.ToLower(modelSHA)
	if r.ModelSHA256 == want {
		return nil
	}
	a, b := shortSHA(r.ModelSHA256), shortSHA(want)
	if a == b {
		a, b = r.ModelSHA256, want
	}
	return fmt.Errorf("%s was calibrated on model sha256 %s, this model is %s: calibrate this model (rq calibrate) or pass the model the ranges were made for", r.name(), a, b)
}

// CheckNetwork verifies that the document describes net's Linear layers:
// the same names, ReLU inputs and output channel counts.
func (r *Ranges) CheckNetwork(net *model.Network) error {
	seen := map[string]bool{}
	for _, in := range Inputs(net) {
		name := in.Layer.Name
		seen[name] = true
		l, ok := r.Layers[name]
		if !ok || l == nil {
			return fmt.Errorf("%s has no ranges for layer %q of the model (it has %s)", r.name(), name, strings.Join(r.LayerNames(), ", "))
		}
		if l.FollowsReLU != in.FollowsReLU {
			return r.errorf(name, "follows_relu is %v, but in the model it is %v", l.FollowsReLU, in.FollowsReLU)
		}
		if len(l.Weight.AbsMax) != in.Layer.Out {
			return r.errorf(name, "has weight statistics for %d output channels, the model's layer has %d", len(l.Weight.AbsMax), in.Layer.Out)
		}
	}
	for _, name := range r.LayerNames() {
		if !seen[name] {
			return r.errorf(name, "is not a Linear layer of the model")
		}
	}
	return nil
}

// Merge combines two calibrations of the same model over different rows:
// the histograms are merged (exactly, as if one run had seen both) and the
// ranges recomputed with a's options. The inputs are not changed. Rows
// becomes "a.Rows + b.Rows", and Data likewise when they differ.
func Merge(a, b *Ranges) (*Ranges, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if err := b.validate(); err != nil {
		return nil, err
	}
	if a.ModelSHA256 != b.ModelSHA256 {
		return nil, fmt.Errorf("cannot merge ranges of different models: %s was calibrated on model sha256 %s, %s on %s", a.name(), a.ModelSHA256, b.name(), b.ModelSHA256)
	}
	an, bn := a.LayerNames(), b.LayerNames()
	if !slices.Equal(an, bn) {
		return nil, fmt.Errorf("cannot merge %s (layers %s) with %s (layers %s): the layers differ", a.name(), strings.Join(an, ", "), b.name(), strings.Join(bn, ", "))
	}
	out := &Ranges{Version: Version, ModelSHA256: a.ModelSHA256, Rows: a.Rows + " + " + b.Rows, Data: a.Data,
		Method: a.Method, Percentile: a.Percentile, Levels: a.Levels, Layers: map[string]*Layer{}}
	if a.Data != b.Data {
		out.Data = a.Data + " + " + b.Data
	}
	if a.ShardCount > 1 || b.ShardCount > 1 {
		// Shards of one selection: the union, and when it is complete the
		// document one unsharded run would have written.
		if a.ShardCount != b.ShardCount || a.Rows != b.Rows {
			return nil, fmt.Errorf("cannot merge %s (rows %s, %s) with %s (rows %s, %s): shards merge only with shards of the same rows and shard count", a.name(), a.Rows, shardDesc(a), b.name(), b.Rows, shardDesc(b))
		}
		for _, x := range b.Shards {
			if slices.Contains(a.Shards, x) {
				return nil, fmt.Errorf("cannot merge %s with %s: both hold shard %d/%d", a.name(), b.name(), x, a.ShardCount)
			}
		}
		out.Rows = a.Rows
		out.Shards = slices.Sorted(slices.Values(append(slices.Clone(a.Shards), b.Shards...)))
		out.ShardCount = a.ShardCount
		if len(out.Shards) == out.ShardCount {
			out.ShardCount, out.Shards = 0, nil
		}
	}
	for _, name := range an {
		la, lb := a.Layers[name], b.Layers[name]
		if la.FollowsReLU != lb.FollowsReLU {
			return nil, fmt.Errorf("cannot merge layer %q: follows_relu is %v in %s and %v in %s", name, la.FollowsReLU, a.name(), lb.FollowsReLU, b.name())
		}
		if !weightsEqual(la.Weight, lb.Weight) {
			return nil, fmt.Errorf("cannot merge layer %q: the weight statistics of %s and %s differ (not the same model, whatever the sha256 says)", name, a.name(), b.name())
		}
		h := la.Hist.Clone()
		if err := h.Merge(lb.Hist); err != nil {
			return nil, fmt.Errorf("cannot merge layer %q of %s and %s: %v", name, a.name(), b.name(), err)
		}
		w := WeightStats{AbsMax: slices.Clone(la.Weight.AbsMax), Min: slices.Clone(la.Weight.Min), Max: slices.Clone(la.Weight.Max)}
		out.Layers[name] = &Layer{FollowsReLU: la.FollowsReLU, Hist: h, Weight: w}
	}
	if (a.Tables == nil) != (b.Tables == nil) {
		with, without := a, b
		if a.Tables == nil {
			with, without = b, a
		}
		return nil, fmt.Errorf("cannot merge %s, which has row access counts (\"tables\"), with %s, which has none: calibrate both with this rq", with.name(), without.name())
	}
	if a.Tables != nil {
		at, bt := sortedKeys(a.Tables), sortedKeys(b.Tables)
		if !slices.Equal(at, bt) {
			return nil, fmt.Errorf("cannot merge %s (tables %s) with %s (tables %s): the tables differ", a.name(), strings.Join(at, ", "), b.name(), strings.Join(bt, ", "))
		}
		out.Tables = make(map[string]*TableAccess, len(at))
		for _, name := range at {
			t, err := mergeAccess(a.Tables[name], b.Tables[name], hotCap)
			if err != nil {
				return nil, fmt.Errorf("cannot merge the access counts of table %q of %s and %s: %v", name, a.name(), b.name(), err)
			}
			out.Tables[name] = t
		}
	}
	if err := out.Recompute(); err != nil {
		return nil, err
	}
	return out, nil
}

func shardDesc(r *Ranges) string {
	if r.ShardCount <= 1 {
		return "unsharded"
	}
	return fmt.Sprintf("shards %v of %d", r.Shards, r.ShardCount)
}

func weightsEqual(a, b WeightStats) bool {
	return slices.Equal(a.AbsMax, b.AbsMax) && slices.Equal(a.Min, b.Min) && slices.Equal(a.Max, b.Max)
}

// validSHA reports whether s is a sha256 digest in lowercase hex.
func validSHA(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// validate checks the whole document, as Read does a file.
func (r *Ranges) validate() error {
	if err := r.validateHeader(); err != nil {
		return err
	}
	if len(r.Layers) == 0 {
		return r.errorf("", "no layers")
	}
	for _, name := range r.LayerNames() {
		if err := r.validateLayer(name, r.Layers[name]); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(r.Tables) {
		if err := r.validateTable(name, r.Tables[name]); err != nil {
			return err
		}
	}
	return nil
}

func (r *Ranges) validateHeader() error {
	if r.Version != Version {
		return r.errorf("", "version %d: this rq reads ranges version %d", r.Version, Version)
	}
	if !validSHA(r.ModelSHA256) {
		return r.errorf("", "model_sha256 %q is not a sha256 digest (64 lowercase hex digits)", r.ModelSHA256)
	}
	if !knownMethod(r.Method) {
		return r.errorf("", "method %q: want one of %s", r.Method, strings.Join(Methods, ", "))
	}
	if !(r.Percentile > 50 && r.Percentile <= 100) {
		return r.errorf("", "percentile %v: want a number in (50, 100]", r.Percentile)
	}
	if r.Levels < MinLevels || r.Levels > MaxLevels {
		return r.errorf("", "levels %d: want %d..%d", r.Levels, MinLevels, MaxLevels)
	}
	if r.ShardCount > 1 || len(r.Shards) > 0 {
		if r.ShardCount < 2 || r.ShardCount > maxShards || len(r.Shards) == 0 || len(r.Shards) >= r.ShardCount {
			return r.errorf("", "shards %v of shard_count %d: want 1 to shard_count-1 shard indices, shard_count 2..%d", r.Shards, r.ShardCount, maxShards)
		}
		for i, x := range r.Shards {
			if x < 0 || x >= r.ShardCount || (i > 0 && x <= r.Shards[i-1]) {
				return r.errorf("", "shards %v: want increasing indices below shard_count %d", r.Shards, r.ShardCount)
			}
		}
	}
	return nil
}

// maxShards bounds shard_count, so a corrupt document cannot ask for a
// billion-entry coverage check.
const maxShards = 1 << 20

func (r *Ranges) validateLayer(name string, l *Layer) error {
	bad := func(format string, args ...any) error { return r.errorf(name, format, args...) }
	if name == "" {
		return bad("empty layer name")
	}
	if l == nil || l.Hist == nil {
		return bad("no histogram")
	}
	if n := l.Hist.Bins(); n < MinBins || n > MaxBins {
		return bad("histogram has %d bins: want %d..%d (make histograms with NewHistogram)", n, MinBins, MaxBins)
	}
	if l.Hist.Count() == 0 {
		return bad("count is 0: no finite input values were observed")
	}
	for _, m := range Methods {
		rg, ok := l.Ranges[m]
		if !ok {
			return bad("no %s range", m)
		}
		lo, hi := float64(rg[0]), float64(rg[1])
		if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			return bad("%s range [%v, %v] is not finite", m, rg[0], rg[1])
		}
		if !(lo <= 0 && 0 <= hi) {
			return bad("%s range [%v, %v] does not contain 0 (a quantizer needs 0 exact)", m, rg[0], rg[1])
		}
		if l.FollowsReLU && lo != 0 {
			return bad("%s range [%v, %v] of a ReLU input does not start at 0", m, rg[0], rg[1])
		}
		// Every method chooses within what was observed (ComputeRange
		// clamps to [min(0, min), max(0, max)]); one bin width of slack
		// admits hand-rounded numbers, and refuses a range that would
		// quantize the observed values onto a handful of levels.
		w := l.Hist.Width()
		a, b := min(0, float64(l.Hist.Min())), max(0, float64(l.Hist.Max()))
		if lo < a-w || hi > b+w {
			return bad("%s range [%v, %v] is not within the observed values [%v, %v] (with 0) widened by the histogram's bin width %v", m, rg[0], rg[1], float32(a), float32(b), w)
		}
	}
	if len(l.Ranges) != len(Methods) {
		for m := range l.Ranges {
			if !knownMethod(m) {
				return bad("unknown range method %q", m)
			}
		}
	}
	w := l.Weight
	if len(w.AbsMax) == 0 || len(w.Min) != len(w.AbsMax) || len(w.Max) != len(w.AbsMax) {
		return bad("weight statistics have %d absmax, %d min and %d max values: want the same positive number (one per output channel)", len(w.AbsMax), len(w.Min), len(w.Max))
	}
	for c := range w.AbsMax {
		mn, mx, am := float64(w.Min[c]), float64(w.Max[c]), float64(w.AbsMax[c])
		if !finite(mn) || !finite(mx) || !finite(am) {
			return bad("weight statistics of output channel %d are not finite", c)
		}
		if mn > mx || am != max(-mn, mx) {
			return bad("weight statistics of output channel %d are inconsistent: min %v, max %v, absmax %v (want min <= max, absmax = max(-min, max))", c, w.Min[c], w.Max[c], w.AbsMax[c])
		}
	}
	return nil
}

// Encode renders the document as ranges.json: fixed key order, layers
// sorted by name, shortest round-tripping number formatting, so equal
// documents give equal bytes, with its digest. It refuses a document Read
// would refuse.
func (r *Ranges) Encode() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	body, err := r.encode("")
	if err != nil {
		return nil, err
	}
	out, err := r.encode(digestOf(body))
	if err == nil && len(out) > MaxFileSize {
		return nil, r.errorf("", "the document would be %d bytes, more than the %d Read accepts (too many tables' hot rows?)", len(out), MaxFileSize)
	}
	return out, err
}

// Digest is the document's digest, as Encode writes it in "digest":
// "sha256:" and the hex sha256 of the document's encoding without the
// digest line. That encoding is a function of the content alone (Read
// puts histograms on a canonical grid, numbers are written in their
// shortest form, keys and layers in a fixed order), so the digest is too:
// a merged document and the one an unsharded run writes have the same one.
func (r *Ranges) Digest() (string, error) {
	body, err := r.encode("")
	if err != nil {
		return "", err
	}
	return digestOf(body), nil
}

func digestOf(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// checkDigest compares a document's recorded digest with its content's.
func (r *Ranges) checkDigest(recorded string) error {
	got, err := r.Digest()
	if err != nil {
		return err
	}
	if recorded != got {
		return r.errorf("", "edited or corrupted: digest mismatch (the file records %s, its content hashes to %s); write it again with rq calibrate or rq merge", shortDigest(recorded), shortDigest(got))
	}
	return nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

// encode renders the document, with a "digest" line unless digest is "".
func (r *Ranges) encode(digest string) ([]byte, error) {
	var b bytes.Buffer
	field := func(indent, key string, v any, last bool) error {
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.WriteString(indent)
		k, _ := json.Marshal(key)
		b.Write(k)
		b.WriteString(": ")
		b.Write(j)
		if !last {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		return nil
	}
	b.WriteString("{\n")
	const i1, i3 = "  ", "      "
	for _, f := range []struct {
		k string
		v any
	}{{"version", r.Version}, {"model_sha256", r.ModelSHA256}, {"rows", r.Rows}, {"data", r.Data},
		{"shard_count", r.ShardCount}, {"shards", r.Shards},
		{"method", r.Method}, {"percentile", r.Percentile}, {"levels", r.Levels}} {
		if (f.k == "shard_count" || f.k == "shards") && r.ShardCount <= 1 {
			continue // unsharded documents keep the original layout
		}
		if err := field(i1, f.k, f.v, false); err != nil {
			return nil, err
		}
	}
	if digest != "" {
		if err := field(i1, "digest", digest, false); err != nil {
			return nil, err
		}
	}
	b.WriteString(i1 + "\"layers\": {\n")
	names := r.LayerNames()
	for li, name := range names {
		l := r.Layers[name]
		h := l.Hist
		k, _ := json.Marshal(name)
		b.WriteString("    ")
		b.Write(k)
		b.WriteString(": {\n")
		rg := make([]any, 0, 2*len(Methods))
		for _, m := range Methods {
			rg = append(rg, m, l.Ranges[m])
		}
		fields := []struct {
			k string
			v any
		}{
			{"follows_relu", l.FollowsReLU},
			{"count", h.Count()},
			{"zeros", h.Zeros()},
			{"nonfinite", h.NonFinite()},
			{"nan", h.NaN()},
			{"posinf", h.PosInf()},
			{"neginf", h.NegInf()},
			{"min", h.Min()},
			{"max", h.Max()},
			{"histogram", orderedObject{"lo", h.Lo(), "hi", h.Hi(), "bins", h.counts}},
			{"ranges", orderedObject(rg)},
			{"weight", orderedObject{"absmax", l.Weight.AbsMax, "min", l.Weight.Min, "max", l.Weight.Max}},
		}
		for fi, f := range fields {
			if err := field(i3, f.k, f.v, fi == len(fields)-1); err != nil {
				return nil, fmt.Errorf("layer %q: %w", name, err)
			}
		}
		b.WriteString("    }")
		if li < len(names)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	if r.Tables == nil {
		b.WriteString(i1 + "}\n}\n")
		return b.Bytes(), nil
	}
	b.WriteString(i1 + "},\n" + i1 + "\"tables\": {\n")
	tnames := sortedKeys(r.Tables)
	for ti, name := range tnames {
		t := r.Tables[name]
		k, _ := json.Marshal(name)
		b.WriteString("    ")
		b.Write(k)
		b.WriteString(": {\n")
		for _, f := range []struct {
			k string
			v any
		}{{"rows", t.Rows}, {"lookups", t.Lookups}, {"exact", t.Exact}, {"error_bound", t.ErrorBound}} {
			if err := field(i3, f.k, f.v, false); err != nil {
				return nil, err
			}
		}
		// The hot rows on one line, written directly: up to MaxHot pairs.
		b.WriteString(i3 + "\"hot\": [")
		for i, h := range t.HotRows {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('[')
			b.Write(strconv.AppendInt(nil, h.Row, 10))
			b.WriteString(", ")
			b.Write(strconv.AppendUint(nil, h.Count, 10))
			b.WriteByte(']')
		}
		b.WriteString("]\n    }")
		if ti < len(tnames)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(i1 + "}\n}\n")
	return b.Bytes(), nil
}

// orderedObject is a JSON object written in the given key order: pairs of
// key, value.
type orderedObject []any

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i+1 < len(o); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		k, err := json.Marshal(o[i])
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(o[i+1])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Write writes the document to path atomically (a reader never sees half
// a file, and a failure leaves any old file in place).
func (r *Ranges) Write(path string) error {
	data, err := r.Encode()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return err
	}
	r.File = path
	return nil
}

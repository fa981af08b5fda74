package calibrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/rqtools/rq/internal/testshared"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// calibrateSharedPath finds a file of /work/shared (../../shared from here):
// missing files fail the test under CI=true and skip it otherwise.
func calibrateSharedPath(t testing.TB, rel string) string {
	t.Helper()
	return testshared.Path(t, rel)
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// criteo loads the shared model and opens rows of the shared click log.
func criteo(t testing.TB, rows dataset.Range) (*model.Network, string, func() dataset.Reader) {
	t.Helper()
	mp := calibrateSharedPath(t, "criteo-18k/model.safetensors")
	dp := calibrateSharedPath(t, "criteo-18k/dlrm-processed.npz")
	m, err := modelio.Load(mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	open := func() dataset.Reader {
		rd, err := dataset.Open(dp, dataset.Options{Rows: rows, NumDense: m.Net.NumDense, TableRows: m.Net.TableRows(), BatchSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rd.Close() })
		return rd
	}
	return m.Net, fileSHA(t, mp), open
}

func TestRunCriteo(t *testing.T) {
	net, sha, open := criteo(t, dataset.Range{Start: 0, End: 2000})
	var progress []int64
	r, err := Run(context.Background(), net, open(), Options{Threads: 2, ModelSHA256: sha, Rows: "0:2000", Data: "dlrm-processed.npz",
		Progress: func(n int64) { progress = append(progress, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 2000 {
		t.Errorf("progress calls %v, want ending at 2000", progress)
	}
	want := map[string]struct {
		relu bool
		in   int
	}{"bot_l.0": {false, 13}, "bot_l.2": {true, 512}, "bot_l.4": {true, 256}, "bot_l.6": {true, 64},
		"top_l.0": {false, 367}, "top_l.2": {true, 512}, "top_l.4": {true, 256}}
	if len(r.Layers) != len(want) {
		t.Fatalf("layers %v, want the 7 Linear layers", r.LayerNames())
	}
	for name, w := range want {
		l := r.Layers[name]
		if l == nil {
			t.Fatalf("no layer %s in %v", name, r.LayerNames())
		}
		h := l.Hist
		if l.FollowsReLU != w.relu {
			t.Errorf("%s: follows_relu %v, want %v", name, l.FollowsReLU, w.relu)
		}
		if h.Count() != uint64(2000*w.in) || h.NonFinite() != 0 {
			t.Errorf("%s: count %d nonfinite %d, want %d and 0", name, h.Count(), h.NonFinite(), 2000*w.in)
		}
		for _, m := range Methods {
			lo, hi, err := r.Range(name, m)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %-10s [%g, %g]  (data [%g, %g], zeros %.1f%%)", name, m, lo, hi, h.Min(), h.Max(), 100*float64(h.Zeros())/float64(h.Count()))
			if w.relu && lo != 0 {
				t.Errorf("%s %s: ReLU input range starts at %v, want 0", name, m, lo)
			}
			if !(lo <= 0 && hi > 0 && lo >= h.Min() && hi <= h.Max()) {
				t.Errorf("%s %s: range [%v, %v] outside data [%v, %v] or not holding 0", name, m, lo, hi, h.Min(), h.Max())
			}
		}
		if w.relu && h.Min() < 0 {
			t.Errorf("%s: a ReLU input has min %v", name, h.Min())
		}
		if len(l.Weight.AbsMax) != net.Bottom[0].Out && name == "bot_l.0" {
			t.Errorf("bot_l.0 weight stats for %d channels", len(l.Weight.AbsMax))
		}
	}
	// The interaction output holds dot products of embeddings: two-sided.
	top := r.Layers["top_l.0"]
	if top.Hist.Min() >= 0 {
		t.Fatalf("top_l.0 min %v: expected negative interaction values", top.Hist.Min())
	}
	if lo, _, _ := r.Range("top_l.0", MethodMinMax); lo >= 0 {
		t.Errorf("top_l.0 minmax lo %v, want < 0", lo)
	}
	if lo, _, _ := r.Range("top_l.0", MethodL2); lo >= 0 {
		t.Errorf("top_l.0 l2 lo %v, want < 0", lo)
	}
	if err := r.Check(sha); err != nil {
		t.Error(err)
	}
	if err := r.CheckNetwork(net); err != nil {
		t.Error(err)
	}

	// Write, read, write again: the same bytes.
	p := filepath.Join(t.TempDir(), "ranges.json")
	if err := r.Write(p); err != nil {
		t.Fatal(err)
	}
	back, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p)
	b2, err := back.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(b1) != string(b2) {
		t.Error("write -> read -> encode changed the bytes")
	}
	t.Logf("ranges.json: %d bytes", len(b1))
}

// Calibrating rows 0:1000 and 1000:2000 apart and merging gives exactly the
// histograms of calibrating 0:2000 at once.
func TestRunMergeEqualsWhole(t *testing.T) {
	net, sha, openAll := criteo(t, dataset.Range{Start: 0, End: 2000})
	_, _, openA := criteo(t, dataset.Range{Start: 0, End: 1000})
	_, _, openB := criteo(t, dataset.Range{Start: 1000, End: 2000})
	opts := Options{Threads: 1, ModelSHA256: sha, Data: "d.npz"}
	run := func(open func() dataset.Reader, rows string) *Ranges {
		o := opts
		o.Rows = rows
		r, err := Run(context.Background(), net, open(), o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	all, a, b := run(openAll, "0:2000"), run(openA, "0:1000"), run(openB, "1000:2000")
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != "0:1000 + 1000:2000" || m.Data != "d.npz" {
		t.Errorf("merged rows %q data %q", m.Rows, m.Data)
	}
	for _, name := range all.LayerNames() {
		if !m.Layers[name].Hist.equal(all.Layers[name].Hist) {
			t.Errorf("%s: merged histogram differs from the whole run's", name)
		}
		for _, meth := range Methods {
			if m.Layers[name].Ranges[meth] != all.Layers[name].Ranges[meth] {
				t.Errorf("%s %s: merged %v, whole %v", name, meth, m.Layers[name].Ranges[meth], all.Layers[name].Ranges[meth])
			}
		}
	}
	// The tables' access counts merge exactly too: every table of this
	// model has at most 2^20 rows, so both are exact counts.
	if len(all.Tables) != 26 || !reflect.DeepEqual(m.Tables, all.Tables) {
		t.Errorf("merged access counts differ from the whole run's (%d tables)", len(all.Tables))
	}
	// The inputs are unchanged.
	if a.Layers["bot_l.0"].Hist.Count() != 13000 {
		t.Errorf("Merge changed its input: count %d", a.Layers["bot_l.0"].Hist.Count())
	}
}

// On the real activations, L2's range quantizes with a lower mean squared
// error than minmax's on every layer, and within a few percent of the best
// method's (the log1p'd dense features are discrete values the histogram
// model of uniform bins cannot see, where percentile can do better).
func TestRunCriteoL2MSE(t *testing.T) {
	net, sha, open := criteo(t, dataset.Range{Start: 0, End: 2000})
	vals := map[string][]float32{}
	names := map[string]bool{}
	for _, in := range Inputs(net) {
		names[in.Layer.Name] = true
	}
	collect := model.ObserverFunc(func(ev model.Event) {
		if names[ev.Layer] {
			for r := range ev.In.Rows {
				vals[ev.Layer] = append(vals[ev.Layer], ev.In.Row(r)...)
			}
		}
	})
	obs, err := NewObserver(net, 0)
	if err != nil {
		t.Fatal(err)
	}
	run := model.NewRunner(net, 2, obs, collect)
	rd := open()
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := run.Forward(b); err != nil {
			t.Fatal(err)
		}
	}
	r, err := obs.Ranges(Options{ModelSHA256: sha})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range r.LayerNames() {
		mse := map[string]float64{}
		best := math.Inf(1)
		for _, m := range Methods {
			rg := r.Layers[name].Ranges[m]
			mse[m] = quantMSE(vals[name], rg[0], rg[1], r.Levels)
			best = min(best, mse[m])
		}
		t.Logf("%s: mse %v", name, mse)
		if mse[MethodL2] > mse[MethodMinMax] {
			t.Errorf("%s: l2 mse %g above minmax's %g", name, mse[MethodL2], mse[MethodMinMax])
		}
		if mse[MethodL2] > 1.15*best {
			t.Errorf("%s: l2 mse %g, the best method has %g", name, mse[MethodL2], best)
		}
	}
}

// sliceReader hands out prepared batches.
type sliceReader struct{ batches []*model.Batch }

func (s *sliceReader) Next() (*model.Batch, error) {
	if len(s.batches) == 0 {
		return nil, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return b, nil
}
func (s *sliceReader) Stats() dataset.Stats { return dataset.Stats{} }
func (s *sliceReader) Close() error         { return nil }

// smallNet: 2 dense features -> bot_l.0 (relu) -> bot_l.2 (relu), 2 tables
// of width 2, dot interaction, top_l.0 (relu) -> top_l.2 (sigmoid).
func smallNet() *model.Network {
	lin := func(name string, in, out int, act model.Activation, seed float32) *model.Linear {
		l := &model.Linear{Name: name, In: in, Out: out, Act: act, Weight: make([]float32, in*out), Bias: make([]float32, out)}
		for i := range l.Weight {
			l.Weight[i] = float32(math.Sin(float64(seed) + float64(i)*1.7))
		}
		for i := range l.Bias {
			l.Bias[i] = 0.1 * float32(i)
		}
		return l
	}
	tab := func(name string) *model.Table {
		t := &model.Table{Name: name, Rows: 5, Dim: 2, Weight: make([]float32, 10)}
		for i := range t.Weight {
			t.Weight[i] = float32(math.Cos(float64(i)*0.9)) * 2
		}
		return t
	}
	// Interaction width: d + f(f-1)/2 = 2 + 3 = 5.
	return &model.Network{NumDense: 2,
		Bottom:      []*model.Linear{lin("bot_l.0", 2, 4, model.ActReLU, 1), lin("bot_l.2", 4, 2, model.ActReLU, 2)},
		Tables:      []*model.Table{tab("emb_l.0"), tab("emb_l.1")},
		Interaction: model.Dot,
		Top:         []*model.Linear{lin("top_l.0", 5, 3, model.ActReLU, 3), lin("top_l.2", 3, 1, model.ActSigmoid, 4)},
	}
}

func smallBatches(n, per int, seed int) []*model.Batch {
	var out []*model.Batch
	for k := range n {
		b := &model.Batch{N: per, NumDense: 2, Row: int64(k * per)}
		b.Indices = [][]int64{{}, {}}
		b.Offsets = [][]int32{{0}, {0}}
		for i := range per {
			x := float64(seed*1000 + k*per + i)
			b.Dense = append(b.Dense, float32(math.Sin(x)*3), float32(math.Cos(x*0.37)*2))
			b.Labels = append(b.Labels, float32(i%2))
			for t := range 2 {
				b.Indices[t] = append(b.Indices[t], int64((k*per+i+t)%5))
				b.Offsets[t] = append(b.Offsets[t], int32(i+1))
			}
		}
		out = append(out, b)
	}
	return out
}

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func smallRanges(t testing.TB, seed int) *Ranges {
	t.Helper()
	r, err := Run(context.Background(), smallNet(), &sliceReader{smallBatches(3, 16, seed)},
		Options{Bins: 16, ModelSHA256: testSHA, Rows: "0:48", Data: "synthetic"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunSmall(t *testing.T) {
	r := smallRanges(t, 0)
	if got := strings.Join(r.LayerNames(), ","); got != "bot_l.0,bot_l.2,top_l.0,top_l.2" {
		t.Fatalf("layers %s", got)
	}
	relu := map[string]bool{"bot_l.0": false, "bot_l.2": true, "top_l.0": false, "top_l.2": true}
	for name, want := range relu {
		if r.Layers[name].FollowsReLU != want {
			t.Errorf("%s: follows_relu %v, want %v", name, r.Layers[name].FollowsReLU, want)
		}
	}
	if c := r.Layers["bot_l.0"].Hist.Count(); c != 96 {
		t.Errorf("bot_l.0 count %d, want 48 rows x 2", c)
	}
	if r.Method != DefaultMethod || r.Levels != 256 || r.Percentile != 99.99 || r.Layers["top_l.0"].Hist.Bins() != 16 {
		t.Errorf("defaults: method %s levels %d percentile %v", r.Method, r.Levels, r.Percentile)
	}
}

func TestRunErrors(t *testing.T) {
	net := smallNet()
	ok := Options{ModelSHA256: testSHA}
	cases := []struct {
		name string
		opts Options
		rd   dataset.Reader
		want string
	}{
		{"no sha", Options{}, &sliceReader{smallBatches(1, 4, 0)}, "sha256"},
		{"short sha", Options{ModelSHA256: "abc"}, &sliceReader{smallBatches(1, 4, 0)}, "64 hex"},
		{"bad method", Options{ModelSHA256: testSHA, Method: "mse"}, &sliceReader{smallBatches(1, 4, 0)}, "unknown range method"},
		{"bad levels", Options{ModelSHA256: testSHA, Levels: 1}, &sliceReader{smallBatches(1, 4, 0)}, "levels"},
		{"bad percentile", Options{ModelSHA256: testSHA, Percentile: 30}, &sliceReader{smallBatches(1, 4, 0)}, "percentile"},
		{"bad bins", Options{ModelSHA256: testSHA, Bins: 3}, &sliceReader{smallBatches(1, 4, 0)}, "bins"},
		{"no rows", ok, &sliceReader{}, "no rows"},
	}
	for _, c := range cases {
		_, err := Run(context.Background(), net, c.rd, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, net, &sliceReader{smallBatches(2, 4, 0)}, ok); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	// A batch the model cannot take names its rows.
	bad := smallBatches(1, 4, 0)
	bad[0].NumDense = 3
	if _, err := Run(context.Background(), net, &sliceReader{bad}, ok); err == nil || !strings.Contains(err.Error(), "rows from 0") {
		t.Errorf("bad batch: got %v", err)
	}
	// All-NaN inputs cannot be calibrated: the first NaN prediction is
	// traced to its dense feature.
	nan := smallBatches(1, 4, 0)
	for i := range nan[0].Dense {
		nan[0].Dense[i] = float32(math.NaN())
	}
	if _, err := Run(context.Background(), net, &sliceReader{nan}, ok); err == nil || !strings.Contains(err.Error(), "data row 0 is NaN: its dense feature 0 is NaN") {
		t.Errorf("NaN inputs: got %v", err)
	}
	// NaN weights are refused with the element.
	bw := smallNet()
	bw.Top[1].Weight[2] = float32(math.Inf(1))
	if _, err := Run(context.Background(), bw, &sliceReader{smallBatches(1, 4, 0)}, ok); err == nil || !strings.Contains(err.Error(), "top_l.2: weight [0][2] is +Inf") {
		t.Errorf("Inf weight: got %v", err)
	}
}

package calibrate

import (
	"bytes"
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
)

// withLimits lowers the exact-count threshold and the summary capacity
// for one test.
func withLimits(t *testing.T, exactRows int64, capacity int) {
	t.Helper()
	oe, oc := exactMaxRows, hotCap
	exactMaxRows, hotCap = exactRows, capacity
	t.Cleanup(func() { exactMaxRows, hotCap = oe, oc })
}

// skewedStream is a batch stream over tables of the given rows: bags of
// 0 to 3 ids (multi-hot, some empty), Zipf-distributed so that a few rows
// are hot, with per-sample weights that counting must ignore.
func skewedStream(seed uint64, rows []int64, batches, per int) []*model.Batch {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []*model.Batch
	for k := range batches {
		b := &model.Batch{N: per, Row: int64(k * per)}
		for _, r := range rows {
			z := rand.NewZipf(rng, 1.3, 2, uint64(r-1))
			off := []int32{0}
			var idx []int64
			var w []float32
			for range per {
				for range rng.IntN(4) {
					idx = append(idx, int64(z.Uint64()))
					w = append(w, rng.Float32())
				}
				off = append(off, int32(len(idx)))
			}
			b.Indices, b.Offsets, b.Weights = append(b.Indices, idx), append(b.Offsets, off), append(b.Weights, w)
		}
		out = append(out, b)
	}
	return out
}

func tablesNet(rows []int64) *model.Network {
	net := &model.Network{}
	for i, r := range rows {
		net.Tables = append(net.Tables, &model.Table{Name: "emb_l." + string(rune('0'+i)), Rows: r, Dim: 4})
	}
	return net
}

func countStream(t *testing.T, net *model.Network, bs []*model.Batch) map[string]*TableAccess {
	t.Helper()
	c, err := newAccessCounter(net)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if err := c.count(b); err != nil {
			t.Fatal(err)
		}
	}
	return c.access()
}

// plainCounts is the reference: a map per table, every id once.
func plainCounts(bs []*model.Batch, tables int) []map[int64]uint64 {
	out := make([]map[int64]uint64, tables)
	for i := range out {
		out[i] = map[int64]uint64{}
	}
	for _, b := range bs {
		for ti, idx := range b.Indices {
			for _, id := range idx {
				out[ti][id]++
			}
		}
	}
	return out
}

// The exact counts are a plain map count, sorted by count then row.
func TestAccessExactEqualsMap(t *testing.T) {
	rows := []int64{7, 1000, 1 << 20}
	net := tablesNet(rows)
	bs := skewedStream(1, rows, 5, 300)
	got := countStream(t, net, bs)
	want := plainCounts(bs, len(rows))
	for ti, tb := range net.Tables {
		ta := got[tb.Name]
		if !ta.Exact || ta.ErrorBound != 0 || ta.Rows != tb.Rows {
			t.Fatalf("%s: exact %v bound %d rows %d", tb.Name, ta.Exact, ta.ErrorBound, ta.Rows)
		}
		var ref []HotRow
		var n uint64
		for r, c := range want[ti] {
			ref = append(ref, HotRow{r, c})
			n += c
		}
		slices.SortFunc(ref, hotLess)
		if !reflect.DeepEqual(ta.HotRows, ref) || ta.Lookups != n {
			t.Errorf("%s: %d rows, %d lookups; the map has %d rows, %d lookups", tb.Name, len(ta.HotRows), ta.Lookups, len(ref), n)
		}
		r := &Ranges{Tables: got}
		if err := r.validateTable(tb.Name, ta); err != nil {
			t.Error(err)
		}
	}
}

// A summary keeps its promise on a skewed stream: every listed count is
// at least the true count and at most error_bound more, every unlisted
// row was seen at most error_bound times, and the bound is at most
// lookups/capacity; the hottest rows are all listed.
func TestAccessSummaryBound(t *testing.T) {
	const capacity = 64
	withLimits(t, 100, capacity)
	rows := []int64{5000, 50}
	net := tablesNet(rows)
	bs := skewedStream(2, rows, 8, 500)
	got := countStream(t, net, bs)
	want := plainCounts(bs, len(rows))
	checkSummary(t, got["emb_l.0"], want[0], capacity)
	// On a Zipf stream the hottest rows are far above the bound, so the
	// check that unlisted rows are under it has teeth.
	var above int
	for _, f := range want[0] {
		if f > got["emb_l.0"].ErrorBound {
			above++
		}
	}
	if above < 5 {
		t.Errorf("only %d rows above the bound %d", above, got["emb_l.0"].ErrorBound)
	}
	if s := got["emb_l.0"]; s.Exact || len(s.HotRows) != capacity {
		t.Errorf("a table of 5000 rows over 100 is not a full summary: exact %v, %d rows", s.Exact, len(s.HotRows))
	}
	if e := got["emb_l.1"]; !e.Exact {
		t.Error("a table of 50 rows is not exact")
	}
}

func checkSummary(t *testing.T, s *TableAccess, truth map[int64]uint64, capacity int) {
	t.Helper()
	if err := (&Ranges{}).validateTable("x", s); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range truth {
		n += c
	}
	if s.Lookups != n {
		t.Fatalf("lookups %d, want %d", s.Lookups, n)
	}
	if s.ErrorBound*uint64(capacity) > n {
		t.Errorf("error bound %d beyond lookups/capacity = %d/%d", s.ErrorBound, n, capacity)
	}
	listed := map[int64]bool{}
	for _, h := range s.HotRows {
		listed[h.Row] = true
		if f := truth[h.Row]; h.Count < f || h.Count > f+s.ErrorBound {
			t.Errorf("row %d: count %d, true %d, bound %d", h.Row, h.Count, f, s.ErrorBound)
		}
	}
	for r, f := range truth {
		if !listed[r] && f > s.ErrorBound {
			t.Errorf("row %d seen %d times is not listed (bound %d)", r, f, s.ErrorBound)
		}
	}
}

// Shards merged: exact tables give the unsharded counts exactly (also
// when the rows seen overflow the hot list and truncate), summaries a
// result within its bound against the true counts.
func TestAccessMerge(t *testing.T) {
	const capacity = 64
	withLimits(t, 1000, capacity)
	rows := []int64{40, 900, 5000}
	net := tablesNet(rows)
	bs := skewedStream(3, rows, 9, 400)
	whole := countStream(t, net, bs)
	want := plainCounts(bs, len(rows))
	if !whole["emb_l.0"].Exact || whole["emb_l.1"].Exact || whole["emb_l.2"].Exact {
		t.Fatalf("modes: %v %v %v, want exact, truncated exact, summary", whole["emb_l.0"].Exact, whole["emb_l.1"].Exact, whole["emb_l.2"].Exact)
	}
	for _, split := range [][]int{{0, 4, 9}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {0, 8, 9}} {
		var merged map[string]*TableAccess
		for i := 1; i < len(split); i++ {
			part := countStream(t, net, bs[split[i-1]:split[i]])
			if merged == nil {
				merged = part
				continue
			}
			for name := range merged {
				m, err := mergeAccess(merged[name], part[name], capacity)
				if err != nil {
					t.Fatal(err)
				}
				merged[name] = m
			}
		}
		if !reflect.DeepEqual(merged["emb_l.0"], whole["emb_l.0"]) {
			t.Errorf("split %v: emb_l.0 merged differs from the whole", split)
		}
		// emb_l.1's shards saw more than capacity rows each: their lists
		// were truncated, so the merge is a summary within its bound.
		checkSummary(t, merged["emb_l.1"], want[1], capacity)
		checkSummary(t, merged["emb_l.2"], want[2], capacity)
	}
}

// Exact shards whose lists are complete merge to the unsharded counts
// exactly, also when their union overflows the hot list: the same rows
// kept, the same (capacity+1)-th count as the bound.
func TestAccessMergeTruncatesLikeWhole(t *testing.T) {
	const capacity = 16
	withLimits(t, 1000, capacity)
	net := tablesNet([]int64{200})
	batch := func(row int64, ids ...int64) *model.Batch {
		off := make([]int32, len(ids)+1)
		for i := range ids {
			off[i+1] = int32(i + 1)
		}
		return &model.Batch{N: len(ids), Row: row, Indices: [][]int64{ids}, Offsets: [][]int32{off}}
	}
	var a, b []int64
	for i := range int64(14) {
		for range 14 - i {
			a = append(a, i)
		}
		for range i%5 + 1 {
			b = append(b, 10+i)
		}
	}
	pa, pb := countStream(t, net, []*model.Batch{batch(0, a...)}), countStream(t, net, []*model.Batch{batch(0, b...)})
	whole := countStream(t, net, []*model.Batch{batch(0, a...), batch(1, b...)})
	if !pa["emb_l.0"].Exact || !pb["emb_l.0"].Exact || whole["emb_l.0"].Exact {
		t.Fatalf("want exact parts and a truncated whole: %v %v %v", pa["emb_l.0"].Exact, pb["emb_l.0"].Exact, whole["emb_l.0"].Exact)
	}
	m, err := mergeAccess(pa["emb_l.0"], pb["emb_l.0"], capacity)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, whole["emb_l.0"]) {
		t.Errorf("merged %+v\nwhole %+v", m, whole["emb_l.0"])
	}
	checkSummary(t, m, plainCounts([]*model.Batch{batch(0, a...), batch(1, b...)}, 1)[0], capacity)
}

// Run through a summary: the same bytes for any batch size and thread
// count, and the merge of calibration shards keeps the summary's bound.
func TestRunSummaryIndependentOfBatch(t *testing.T) {
	withLimits(t, 100, 16)
	net := randomNet(1)
	rows := randomRows(2, 600)
	encode := func(size, threads int) []byte {
		r, err := Run(context.Background(), net, &sliceReader{cutBatches(rows, size)},
			Options{Threads: threads, Bins: 64, ModelSHA256: testSHA, Rows: "0:600", Data: "synthetic"})
		if err != nil {
			t.Fatal(err)
		}
		if ta, ok := r.TableAccess("emb_l.0"); !ok || ta.Exact || ta.Lookups != 600 {
			t.Fatalf("emb_l.0: %+v, want a summary of 600 lookups", ta)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := encode(rows.N, 1)
	for _, c := range [][2]int{{1, 1}, {7, 2}, {97, 3}, {300, 2}} {
		if got := encode(c[0], c[1]); !bytes.Equal(got, want) {
			t.Fatalf("batch %d, %d threads: ranges.json differs at byte %d", c[0], c[1], firstByteDiff(got, want))
		}
	}
}

func TestTableAccessHot(t *testing.T) {
	ta := &TableAccess{Rows: 10, Lookups: 9, Exact: true, HotRows: []HotRow{{4, 3}, {1, 2}, {7, 2}, {0, 1}, {9, 1}}}
	for _, c := range []struct {
		share float64
		want  []int64
	}{{0, nil}, {-1, nil}, {0.05, []int64{4}}, {0.1, []int64{4}}, {0.11, []int64{4, 1}}, {0.3, []int64{4, 1, 7}},
		{0.5, []int64{4, 1, 7, 0, 9}}, {1, []int64{4, 1, 7, 0, 9}}, {2, []int64{4, 1, 7, 0, 9}}} {
		if got := ta.Hot(c.share); !slices.Equal(got, c.want) {
			t.Errorf("Hot(%v) = %v, want %v", c.share, got, c.want)
		}
	}
	r := &Ranges{Tables: map[string]*TableAccess{"t": ta}}
	if got, ok := r.TableAccess("t"); !ok || got != ta {
		t.Error("TableAccess(t) not found")
	}
	if _, ok := r.TableAccess("u"); ok {
		t.Error("TableAccess(u) found")
	}
}

// Ids outside a table are refused, naming the table and the row.
func TestAccessRefusesOutOfRange(t *testing.T) {
	net := tablesNet([]int64{5})
	c, _ := newAccessCounter(net)
	err := c.count(&model.Batch{N: 1, Row: 40, Indices: [][]int64{{5}}, Offsets: [][]int32{{0, 1}}})
	if err == nil || err.Error() != "rows from 40: table emb_l.0: id 5 (index 0 of the batch's bags): want 0..4" {
		t.Errorf("got %v", err)
	}
	dup := tablesNet([]int64{5, 5})
	dup.Tables[1].Name = dup.Tables[0].Name
	if _, err := newAccessCounter(dup); err == nil {
		t.Error("duplicate table names accepted")
	}
}

// The exact counters carry past 2^32 lookups of a row.
func TestAccessExactCarry(t *testing.T) {
	tc := &tableCounter{name: "t", rows: 3}
	tc.add(1)
	tc.exact[1] = 1<<32 - 2
	tc.lookups = 1<<32 - 2
	for range 3 {
		tc.add(1)
	}
	ta := tc.access()
	if len(ta.HotRows) != 1 || ta.HotRows[0] != (HotRow{1, 1<<32 + 1}) || ta.Lookups != 1<<32+1 {
		t.Errorf("got %+v", ta)
	}
}

// Merge of calibration shards through Run: the exact tables equal the
// whole run's, a table forced into summary mode stays within its bound,
// and documents with and without counts do not merge.
func TestMergeRangesTables(t *testing.T) {
	const capacity = 32
	withLimits(t, 299, capacity) // randomNet's tables have 300 rows: all summaries
	net := randomNet(1)
	rows := randomRows(2, 900)
	run := func(bs []*model.Batch, shard int) *Ranges {
		o := Options{Threads: 1, Bins: 64, ModelSHA256: testSHA, Rows: "0:900", Data: "synthetic"}
		if shard >= 0 {
			o.Shard.Index, o.Shard.Count = shard, 3
		}
		r, err := Run(context.Background(), net, &sliceReader{bs}, o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	parts := cutBatches(rows, 300)
	m, err := Merge(run(parts[:1], 0), run(parts[1:2], 1))
	if err == nil {
		m, err = Merge(m, run(parts[2:], 2))
	}
	if err != nil {
		t.Fatal(err)
	}
	truth := plainCounts([]*model.Batch{rows}, 3)
	for i, name := range []string{"emb_l.0", "emb_l.1", "emb_l.2"} {
		ta, ok := m.TableAccess(name)
		if !ok || ta.Exact {
			t.Fatalf("%s: %+v, want a summary", name, ta)
		}
		checkSummary(t, ta, truth[i], capacity)
	}
	if _, err := m.Encode(); err != nil {
		t.Fatal(err)
	}
	old := run(parts, -1)
	old.Tables = nil
	if _, err := Merge(old, run(parts, -1)); err == nil || !strings.Contains(err.Error(), `has row access counts ("tables"), with ranges, which has none`) {
		t.Errorf("merging with a document without counts: %v", err)
	}
	other := run(parts, -1)
	other.Tables["emb_l.9"] = other.Tables["emb_l.2"]
	delete(other.Tables, "emb_l.2")
	if _, err := Merge(run(parts, -1), other); err == nil || !strings.Contains(err.Error(), "the tables differ") {
		t.Errorf("merging different tables: %v", err)
	}
}

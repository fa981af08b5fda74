package dataset

import (
	"slices"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, s := range []string{"", "1", "1/", "/2", "2/2", "-1/3", "0/0", "a/b", "1/2/3"} {
		if _, err := ParseShard(s); err == nil {
			t.Errorf("ParseShard(%q) accepted", s)
		}
	}
	if sh, err := ParseShard("3/8"); err != nil || sh != (Shard{3, 8}) || sh.String() != "3/8" {
		t.Errorf("ParseShard(3/8) = %v, %v", sh, err)
	}
	if _, err := Open("testdata/small.tsv", Options{Shard: Shard{Index: 2, Count: 2}}); err == nil {
		t.Error("Open accepted shard 2/2")
	}
}

// TestShardsPartitionBatches: the shards of a selection hand out exactly the
// batches of the unsharded read, batch k in shard k mod n, and SelectedRows
// and Stats count each shard's rows.
func TestShardsPartitionBatches(t *testing.T) {
	cases := []struct {
		path  string
		opts  Options
		rowsR bool // the reader knows its row count
	}{
		{"testdata/small.tsv", Options{BatchSize: 2, TableRows: tables(26, 1000)}, false},
		{datasetSharedPath(t, "criteo-18k/criteo-18k.tsv"), Options{BatchSize: 700, Rows: Range{0, 4000}}, false},
		{"testdata/small_c.npz", Options{BatchSize: 2, Rows: Range{1, 6}}, true},
		{datasetSharedPath(t, "criteo-18k/dlrm-processed.npz"), Options{BatchSize: 1000, Rows: Range{100, 5500}}, true},
	}
	for _, tc := range cases {
		full := mustReadAll(t, tc.path, tc.opts)
		for n := 1; n <= 4; n++ {
			got := make([]readResult, n)
			for i := range n {
				o := tc.opts
				o.Shard = Shard{Index: i, Count: n}
				r := mustOpen(t, tc.path, o)
				res, err := readAll(t, r)
				if err != nil {
					t.Fatal(err)
				}
				got[i] = res
				rows := int64(0)
				for _, s := range res.sizes {
					rows += int64(s)
				}
				if st := r.Stats(); st.Rows != rows {
					t.Errorf("%s shard %d/%d: Stats.Rows %d, handed out %d", tc.path, i, n, st.Rows, rows)
				}
				rr, ok := r.(RowsReader)
				if ok != tc.rowsR {
					t.Fatalf("%s shard %d/%d: RowsReader %v, want %v", tc.path, i, n, ok, tc.rowsR)
				}
				if ok && rr.SelectedRows() != rows {
					t.Errorf("%s shard %d/%d: SelectedRows %d, handed out %d", tc.path, i, n, rr.SelectedRows(), rows)
				}
			}
			for k, start := range full.starts {
				sh := got[k%n]
				j := k / n
				if j >= len(sh.starts) || sh.starts[j] != start || sh.sizes[j] != full.sizes[k] {
					t.Fatalf("%s n=%d: batch %d (row %d) is not batch %d of shard %d", tc.path, n, k, start, j, k%n)
				}
			}
			total := 0
			for _, g := range got {
				total += len(g.starts)
			}
			if total != len(full.starts) {
				t.Errorf("%s n=%d: shards hold %d batches, the whole %d", tc.path, n, total, len(full.starts))
			}
			// The examples themselves are the same.
			var labels []float32
			for k := range full.starts {
				sh := got[k%n]
				off := 0
				for j := 0; j < k/n; j++ {
					off += sh.sizes[j]
				}
				labels = append(labels, sh.labels[off:off+sh.sizes[k/n]]...)
			}
			if !slices.Equal(labels, full.labels) {
				t.Errorf("%s n=%d: reassembled labels differ", tc.path, n)
			}
		}
	}
}

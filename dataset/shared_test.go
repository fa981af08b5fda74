package dataset

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"reflect"
	"testing"
)

// goldenTensor reads one tensor of a safetensors file: an 8-byte
// little-endian header length, a JSON header, then the data.
func goldenTensor(t *testing.T, path, name string) (dtype string, shape []int, data []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	var info struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(hdr[name], &info); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	base := 8 + int64(n)
	return info.DType, info.Shape, b[base+info.Offsets[0] : base+info.Offsets[1]]
}

func sharedCounts(t *testing.T, npz string) []int64 {
	t.Helper()
	r := mustOpen(t, npz, Options{})
	c := r.(CountsReader).Counts()
	if len(c) != 26 || c[3] != 6873 {
		t.Fatalf("counts %v", c)
	}
	return c
}

// The test split of the reference file: sizes, labels, and the first 8 rows
// bit for bit against what PyTorch fed the model (golden dense_in, sparse_in).
func TestSharedNpzTestSplit(t *testing.T) {
	npz := datasetSharedPath(t, "criteo-18k/dlrm-processed.npz")
	golden := datasetSharedPath(t, "criteo-18k/golden.safetensors")
	counts := sharedCounts(t, npz)
	rg, err := ParseRange("15429:16715")
	if err != nil {
		t.Fatal(err)
	}
	res := mustReadAll(t, npz, Options{Rows: rg, BatchSize: 100, NumDense: 13, TableRows: counts})
	want := make([]int, 12, 13)
	for i := range want {
		want[i] = 100
	}
	want = append(want, 86)
	if !reflect.DeepEqual(res.sizes, want) {
		t.Fatalf("batch sizes %v", res.sizes)
	}
	if res.starts[0] != 15429 || res.starts[12] != 16629 {
		t.Fatalf("batch rows %v", res.starts)
	}
	pos := 0
	for _, l := range res.labels {
		if l == 1 {
			pos++
		}
	}
	if mean := float64(pos) / float64(len(res.labels)); pos != 306 || math.Abs(mean-0.23795) > 5e-6 {
		t.Fatalf("%d positives, mean %v; want 306, 0.23795", pos, mean)
	}

	dt, shape, data := goldenTensor(t, golden, "dense_in")
	if dt != "F32" || !reflect.DeepEqual(shape, []int{8, 13}) {
		t.Fatalf("dense_in %s %v", dt, shape)
	}
	maxULP := 0
	for i := range 8 {
		for j := range 13 {
			g := binary.LittleEndian.Uint32(data[(i*13+j)*4:])
			d := int(math.Float32bits(res.dense[i][j])) - int(g)
			maxULP = max(maxULP, d, -d)
		}
	}
	if maxULP != 0 {
		t.Fatalf("dense_in differs from golden by up to %d ulp, want bit-for-bit", maxULP)
	}
	dt, shape, data = goldenTensor(t, golden, "sparse_in")
	if dt != "I64" || !reflect.DeepEqual(shape, []int{8, 26}) {
		t.Fatalf("sparse_in %s %v", dt, shape)
	}
	for i := range 8 {
		for c := range 26 {
			if g := int64(binary.LittleEndian.Uint64(data[(i*26+c)*8:])); res.idx[i][c] != g {
				t.Fatalf("row %d table %d: %d, golden %d", i, c, res.idx[i][c], g)
			}
		}
	}
}

// Ranges over the real file (deflated, C-order X_int, Fortran-order X_cat),
// at and across batch boundaries, against one full read; and the spill path.
func TestSharedNpzRanges(t *testing.T) {
	npz := datasetSharedPath(t, "criteo-18k/dlrm-processed.npz")
	counts := sharedCounts(t, npz)
	full := mustReadAll(t, npz, Options{TableRows: counts})
	if len(full.labels) != 18000 || len(full.sizes) != 9 || full.sizes[8] != 18000-8*2048 {
		t.Fatalf("full read: %d rows in %v", len(full.labels), full.sizes)
	}
	check := func(rs string, batch int, spill bool) {
		rg, _ := ParseRange(rs)
		if spill {
			old := fortranMemLimit
			fortranMemLimit = 1 << 10
			defer func() { fortranMemLimit = old }()
		}
		res := mustReadAll(t, npz, Options{Rows: rg, BatchSize: batch, TableRows: counts})
		end := rg.End
		if end < 0 {
			end = 18000
		}
		if !reflect.DeepEqual(res.dense, full.dense[rg.Start:end]) || !reflect.DeepEqual(res.idx, full.idx[rg.Start:end]) ||
			!reflect.DeepEqual(res.labels, full.labels[rg.Start:end]) || !reflect.DeepEqual(res.rows, full.rows[rg.Start:end]) {
			t.Fatalf("range %s batch %d spill %v differs from the full read", rs, batch, spill)
		}
	}
	for _, rs := range []string{"0:1", "0:2048", "2048:4096", "2047:2049", "1:2049", "17999:", "15429:16715", "16715:18000"} {
		check(rs, 2048, false)
	}
	check("15429:16715", 100, true)
	check("0:", 4096, true)
}

// The raw TSV holds the same rows as the npz: labels and (clamped, log1p)
// dense features must agree exactly; indices are hashes mod the table sizes.
func TestSharedTSV(t *testing.T) {
	tsv := datasetSharedPath(t, "criteo-18k/criteo-18k.tsv")
	npz := datasetSharedPath(t, "criteo-18k/dlrm-processed.npz")
	counts := sharedCounts(t, npz)
	res := mustReadAll(t, tsv, Options{TableRows: counts, NumDense: 13})
	if len(res.labels) != 18000 {
		t.Fatalf("%d rows", len(res.labels))
	}
	ref := mustReadAll(t, npz, Options{TableRows: counts})
	if !reflect.DeepEqual(res.labels, ref.labels) || !reflect.DeepEqual(res.dense, ref.dense) {
		t.Fatal("TSV labels or dense features differ from the npz's")
	}
	distinct := make([]map[int64]bool, 26)
	for c := range distinct {
		distinct[c] = map[int64]bool{}
	}
	for _, row := range res.idx {
		for c, v := range row {
			if v < 0 || v >= counts[c] {
				t.Fatalf("index %d out of table %d", v, c)
			}
			distinct[c][v] = true
		}
	}
	// Hashing spreads ids: the big tables must see many distinct indices.
	if len(distinct[2]) < 1000 || len(distinct[8]) > 3 {
		t.Fatalf("distinct ids: C3 %d, C9 %d", len(distinct[2]), len(distinct[8]))
	}
}

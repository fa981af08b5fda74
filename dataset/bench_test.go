package dataset

import (
	"archive/zip"
	"io"
	"os"
	"testing"
)

// benchRead reads path to the end b.N times, reporting rows/s and, through
// SetBytes, MB/s of the file as stored on disk.
func benchRead(b *testing.B, path string, opts Options) {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	rows := int64(0)
	for b.Loop() {
		r, err := Open(path, opts)
		if err != nil {
			b.Fatal(err)
		}
		for {
			batch, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows += int64(batch.N)
		}
		r.Close()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkTSV: the raw Criteo rows (4.4 MB, 18000 lines).
func BenchmarkTSV(b *testing.B) {
	p := datasetSharedPath(b, "criteo-18k/criteo-18k.tsv")
	benchRead(b, p, Options{TableRows: tables(26, 1<<20)})
}

// BenchmarkNpz: the reference's deflated npz (X_cat float64, column-major),
// read whole, and the test split only; plus a stored C-order int32 file in
// the layout bench/synth_dlrm.py writes, where rows are read in place.
func BenchmarkNpz(b *testing.B) {
	p := datasetSharedPath(b, "criteo-18k/dlrm-processed.npz")
	b.Run("criteo-18k", func(b *testing.B) { benchRead(b, p, Options{}) })
	b.Run("criteo-18k-test-split", func(b *testing.B) { benchRead(b, p, Options{Rows: Range{15429, 16715}}) })
	b.Run("stored-int32-200k", func(b *testing.B) {
		const n = 200000
		a := []testArray{
			{name: "X_int", descr: "<i4", shape: []int64{n, 13}, vals: make([]float64, n*13)},
			{name: "X_cat", descr: "<i4", shape: []int64{n, 26}, vals: make([]float64, n*26)},
			{name: "y", descr: "<i4", shape: []int64{n}, vals: make([]float64, n)},
		}
		for i := range a[0].vals {
			a[0].vals[i] = float64(i % 1000)
		}
		for i := range a[1].vals {
			a[1].vals[i] = float64(i % 99991)
		}
		benchRead(b, writeNpz(b, "synth.npz", zip.Store, a...), Options{})
	})
}

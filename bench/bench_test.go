package bench

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/rqtools/rq/kernels"
)

// TestRunSmall runs every kernel once at a small shape: it must produce a
// positive figure, VsFP32 for non-fp32 kernels of a family, and a ceiling
// when one is given.
func TestRunSmall(t *testing.T) {
	ceil := func(k string, s Shape, th int) (Ceiling, error) { return Ceiling{GOPS: 1, Name: "fake"}, nil }
	var names []string
	for _, k := range registry {
		if k.family == "gemm" {
			names = append(names, k.name)
		}
	}
	rs, err := Run(context.Background(), Options{Kernels: names, Shapes: []Shape{{M: 13, N: 7, K: 5}}, Threads: []int{1, 2},
		MinTime: time.Millisecond, Trials: 1}, ceil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2*len(names) {
		t.Fatalf("%d results for %d kernels x 2 thread counts", len(rs), len(names))
	}
	for _, r := range rs {
		if r.GOPS <= 0 || r.Ceiling != 1 || r.Ratio != r.GOPS || r.Impl == "" {
			t.Errorf("%+v", r)
		}
	}
	if _, err := Run(context.Background(), Options{Kernels: []string{"nope"}}, nil); err == nil {
		t.Error("unknown kernel accepted")
	}
}

func TestParallelCoversRows(t *testing.T) {
	for _, n := range []int{1, 11, 12, 13, 100} {
		for _, th := range []int{1, 2, 3, 8} {
			seen := make([]int, n)
			parallel(th, n, 12, func(lo, hi int) {
				if lo%12 != 0 {
					t.Errorf("chunk starts at %d, not a multiple of 12", lo)
				}
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("n=%d threads=%d: row %d covered %d times", n, th, i, c)
				}
			}
		}
	}
}

// TestRunInterleaves: kernels of a family take their trials in turn (so
// drift of the machine's speed hits them alike), bags too, and results come
// back kernel by kernel in the order asked.
func TestRunInterleaves(t *testing.T) {
	saved := registry
	defer func() { registry = saved }()
	var log []string
	fake := func(name, family string) kernel {
		return kernel{name: name, family: family, fp32: "fa", setup: func(s Shape, _ *Options) (*runner, error) {
			return &runner{rows: 1, align: 1, ops: 1, bytes: 1, impl: "fake", run: func(lo, hi int) {
				if len(log) == 0 || log[len(log)-1] != name {
					log = append(log, name)
				}
				time.Sleep(50 * time.Microsecond)
			}}, nil
		}}
	}
	registry = []kernel{fake("fa", "gemm"), fake("fb", "gemm"), fake("ba", "bag"), fake("bb", "bag")}
	rs, err := Run(context.Background(), Options{Kernels: []string{"fb", "fa", "ba", "bb"}, Shapes: []Shape{{M: 1, N: 1, K: 1}},
		MinTime: time.Millisecond, Trials: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var gemm, bags []string
	for _, n := range log {
		if n[0] == 'f' {
			gemm = append(gemm, n)
		} else {
			bags = append(bags, n)
		}
	}
	// warm-ups fb, fa, then three rounds of fb, fa: runs of one kernel
	// are merged in the log, so the pair alternates throughout.
	if want := []string{"fb", "fa", "fb", "fa", "fb", "fa", "fb", "fa"}; !slices.Equal(gemm, want) {
		t.Errorf("GEMM kernels ran %v, want %v", gemm, want)
	}
	// Bags likewise, at each of their shapes: warm-ups and three rounds.
	var want []string
	for range 4 * len(bagShapes) {
		want = append(want, "ba", "bb")
	}
	if !slices.Equal(bags, want) {
		t.Errorf("bags ran %v, want in turn %v", bags, want)
	}
	var got []string // bags have their own shapes: one entry per run of a kernel
	for _, r := range rs {
		if len(got) == 0 || got[len(got)-1] != r.Kernel {
			got = append(got, r.Kernel)
		}
	}
	if want := []string{"fb", "fa", "ba", "bb"}; !slices.Equal(got, want) {
		t.Errorf("results in order %v, want %v", got, want)
	}
	if rs[0].VsFP32 <= 0 {
		t.Errorf("fb has no ratio against fa: %+v", rs[0])
	}
}

// TestBagsRunEveryFormat runs every bag kernel on a small table: the MX
// bags sit beside the row-wise ones at the same points, each names the
// implementation that pools it, and GB/s is rows/s times the bytes one
// lookup reads (codes and scales for MX, the row with its scale and bias
// for row-wise).
func TestBagsRunEveryFormat(t *testing.T) {
	var names []string
	for _, k := range registry {
		if k.family == "bag" {
			names = append(names, k.name)
		}
	}
	for _, f := range kernels.MXFormats {
		if n := "bag-" + f.Precision().String(); !slices.Contains(names, n) {
			t.Errorf("no bag kernel %s among %v", n, names)
		}
	}
	rs, err := Run(context.Background(), Options{Kernels: names, MinTime: time.Millisecond, Trials: 1, TableBytes: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rowBytes := map[string]func(dim int) int{"bag-fp32": func(d int) int { return 4 * d }}
	for _, f := range []kernels.TableFormat{kernels.TableF16, kernels.TableQ8, kernels.TableQ4, kernels.TableQ2} {
		rowBytes["bag-"+f.Precision().String()] = f.RowBytes
	}
	for _, f := range kernels.MXFormats {
		rowBytes["bag-"+f.Precision().String()] = func(d int) int { return kernels.MXCodeBytes(f, d) + kernels.MXScales(d) }
	}
	seen := map[string][]Shape{}
	for _, r := range rs {
		seen[r.Kernel] = append(seen[r.Kernel], Shape{M: r.M, N: r.N, K: r.K})
		if r.Kernel == "bag-mixed" {
			// Its bytes a row depend on which rows are hot (bench/mixed.go).
			if r.RowsPerSec <= 0 || r.GBps <= 0 || r.Impl != kernels.MixedBagImpl() {
				t.Errorf("bag-mixed %dx%dx%d: %.4g rows/s, %.4g GB/s, impl %s", r.M, r.N, r.K, r.RowsPerSec, r.GBps, r.Impl)
			}
			continue
		}
		rb, ok := rowBytes[r.Kernel]
		if !ok {
			t.Errorf("unexpected bag kernel %s", r.Kernel)
			continue
		}
		if want := r.RowsPerSec * float64(rb(r.N)) / 1e9; r.RowsPerSec <= 0 || math.Abs(r.GBps-want) > 1e-9*want {
			t.Errorf("%s %dx%dx%d: %.4g GB/s at %.4g rows/s, want %.4g GB/s (%d bytes a row)", r.Kernel, r.M, r.N, r.K, r.GBps, r.RowsPerSec, want, rb(r.N))
		}
		if r.Kernel != "bag-fp32" && r.VsFP32 <= 0 {
			t.Errorf("%s %dx%dx%d: no ratio against bag-fp32", r.Kernel, r.M, r.N, r.K)
		}
		wantImpl := kernels.BagImpl()
		if _, ok := mxFormatOf(r.Kernel); ok {
			wantImpl = kernels.MXBagImpl()
		}
		if r.Impl != wantImpl {
			t.Errorf("%s: impl %q, want %q", r.Kernel, r.Impl, wantImpl)
		}
	}
	for _, n := range names {
		if !slices.Equal(seen[n], bagShapes) {
			t.Errorf("%s ran at %v, want the bag shapes %v", n, seen[n], bagShapes)
		}
	}
}

func mxFormatOf(kernel string) (kernels.MXFormat, bool) {
	for _, f := range kernels.MXFormats {
		if kernel == "bag-"+f.Precision().String() {
			return f, true
		}
	}
	return 0, false
}

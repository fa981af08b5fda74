package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
)

// Shape is one problem size: M rows of activations (or bags), N outputs
// (or the embedding width), K inputs (or indices per bag).
type Shape struct{ M, N, K int }

// Result is one kernel at one shape and thread count.
type Result struct {
	Kernel  string  `json:"kernel"`
	Impl    string  `json:"impl"`
	M       int     `json:"m"`
	N       int     `json:"n"`
	K       int     `json:"k"`
	Threads int     `json:"threads"`
	GOPS    float64 `json:"gops,omitempty"` // GEMMs: 2*M*N*K / s (GFLOPS for float kernels)
	GBps    float64 `json:"gbps,omitempty"` // bags: table bytes touched / s
	// RowsPerSec is, for bags, pooled lookups per second.
	RowsPerSec float64 `json:"rows_per_sec,omitempty"`
	// Ceiling is the peer's figure for the same shape and threads (oneDNN for
	// GEMMs), in the same unit; Ratio = ours / Ceiling.
	Ceiling     float64 `json:"ceiling,omitempty"`
	CeilingName string  `json:"ceiling_name,omitempty"`
	Ratio       float64 `json:"ratio,omitempty"`
	// CeilingNote says why a GEMM row has no ceiling although the peer
	// has a counterpart (it could not run this thread count).
	CeilingNote string `json:"ceiling_note,omitempty"`
	// VsFP32 compares with the fp32 kernel of the same family at the same
	// shape and threads (int8 GEMM vs fp32 GEMM, 8-bit bag vs fp32 bag).
	VsFP32 float64 `json:"vs_fp32,omitempty"`
}

// Options select what to run.
type Options struct {
	Kernels []string // names from Kernels(); empty: all
	Shapes  []Shape  // GEMM shapes; empty: DefaultShapes
	Threads []int    // thread counts; empty: {1}
	// MinTime is the least time one trial runs; Trials the number of trials
	// (the best is kept).
	MinTime time.Duration
	Trials  int
	// TableBytes is the fp32 size of each bag benchmark's table (the
	// quantized tables are made from it); 0 is DefaultTableBytes. Smaller
	// tables that fit the caches measure the kernels' arithmetic rather
	// than the memory system.
	TableBytes int64
	// Progress, when set, is called after each measurement.
	Progress func(done, total int)
}

// DefaultShapes are the DLRM layer shapes (N outputs, K inputs) of the
// criteo-18k and MLPerf models at M = 1, 128 and 2048.
func DefaultShapes() []Shape {
	nk := [][2]int{{512, 13}, {256, 512}, {64, 256}, {16, 64}, {512, 367}, {1, 256},
		{512, 128}, {1024, 479}, {1024, 1024}, {512, 512}, {256, 1024}}
	var s []Shape
	for _, m := range []int{1, 128, 2048} {
		for _, x := range nk {
			s = append(s, Shape{M: m, N: x[0], K: x[1]})
		}
	}
	return s
}

// A runner computes rows [lo, hi) of its problem; ops is the work of the
// whole problem (multiply-adds times two, or bytes for bags).
type runner struct {
	run func(lo, hi int)
	// next, when set, is called before each full run (bags move to a fresh
	// batch of indices so rows are not served from cache).
	next  func()
	rows  int
	align int
	ops   float64 // per full run
	bytes float64 // table bytes touched per full run (bags)
	impl  string
}

// kernel describes one benchmarked kernel.
type kernel struct {
	name   string
	family string // "gemm", "bag" or "interact"
	fp32   string // the fp32 kernel of the family, for VsFP32
	// rowBytes is, for bags, the bytes of one table row of width dim.
	rowBytes func(dim int) int
	setup    func(s Shape, o *Options) (*runner, error)
}

var registry []kernel

func register(k kernel) { registry = append(registry, k) }

// Kernels lists the benchmarkable kernel names.
func Kernels() []string {
	var n []string
	for _, k := range registry {
		n = append(n, k.name)
	}
	return n
}

func find(name string) (kernel, bool) {
	for _, k := range registry {
		if k.name == name {
			return k, true
		}
	}
	return kernel{}, false
}

// parallel splits rows as the model's layers do.
var parallel = model.SplitRows

// fullRun runs r once over all its rows on threads goroutines.
func fullRun(r *runner, threads int) {
	if r.next != nil {
		r.next()
	}
	parallel(threads, r.rows, r.align, r.run)
}

// trial returns the rate (full runs per second) of full runs repeated for
// at least minTime.
func trial(r *runner, threads int, minTime time.Duration) float64 {
	n := 0
	start := time.Now()
	var el time.Duration
	for el < minTime {
		fullRun(r, threads)
		n++
		el = time.Since(start)
	}
	return float64(n) / el.Seconds()
}

// Run measures every selected kernel at every shape and thread count. With
// a ceiling function (see Peer), GEMM results gain Ceiling and Ratio, or a
// CeilingNote; its error ends the run.
//
// The kernels of a family that share a shape and thread count (the GEMMs at
// every precision, say) take their trials in turn, each keeping its best:
// this machine's speed drifts by 10% over minutes, and measured one kernel
// after the other, even two kernels running the same code differed by that
// much, which the ratios against fp32 are meant not to show. The bags do
// too, on one fp32 table (Options.TableBytes) and its quantized copies, all
// held at once (CheckTable bounds that): on a shared machine whose load
// changed within the minutes one bag after the other took, identical MX
// kernels (mxint8 and mxfp8_e4m3) measured one after the other differed by
// 5x, taking their trials in turn they do not.
func Run(ctx context.Context, o Options, ceiling CeilingFunc) ([]Result, error) {
	names := o.Kernels
	if len(names) == 0 {
		names = Kernels()
	}
	shapes := o.Shapes
	if len(shapes) == 0 {
		shapes = DefaultShapes()
	}
	threads := o.Threads
	if len(threads) == 0 {
		threads = []int{1}
	}
	if o.MinTime <= 0 {
		o.MinTime = 200 * time.Millisecond
	}
	if o.Trials <= 0 {
		o.Trials = 3
	}
	if o.TableBytes <= 0 {
		o.TableBytes = DefaultTableBytes
	}
	var ks []kernel
	for _, n := range names {
		k, ok := find(n)
		if !ok {
			return nil, fmt.Errorf("unknown kernel %q (known: %s)", n, strings.Join(Kernels(), ", "))
		}
		ks = append(ks, k)
	}
	// Groups of kernels measured together: a family's kernels.
	var groups [][]kernel
	family := map[string]int{}
	for _, k := range ks {
		if g, ok := family[k.family]; ok {
			groups[g] = append(groups[g], k)
			continue
		}
		family[k.family] = len(groups)
		groups = append(groups, []kernel{k})
	}
	total := 0
	for _, k := range ks {
		total += len(shapesFor(k, shapes)) * len(threads)
	}
	var out []Result
	done := 0
	for _, g := range groups {
		for _, s := range shapesFor(g[0], shapes) {
			if g[0].family == "bag" {
				releaseTables(s.N)
			}
			rs := make([]*runner, len(g))
			for i, k := range g {
				r, err := k.setup(s, &o)
				if err != nil {
					return nil, fmt.Errorf("%s %dx%dx%d: %w", k.name, s.M, s.N, s.K, err)
				}
				rs[i] = r
			}
			for _, th := range threads {
				for _, r := range rs {
					fullRun(r, th) // warm up: page in, pack caches
				}
				best := make([]float64, len(g))
				for range o.Trials {
					for i, r := range rs {
						if err := ctx.Err(); err != nil {
							return nil, err
						}
						best[i] = max(best[i], trial(r, th, o.MinTime))
					}
				}
				for i, k := range g {
					res := Result{Kernel: k.name, Impl: rs[i].impl, M: s.M, N: s.N, K: s.K, Threads: th}
					if k.family == "bag" {
						res.GBps = best[i] * rs[i].bytes / 1e9
						res.RowsPerSec = best[i] * rs[i].ops
					} else {
						res.GOPS = best[i] * rs[i].ops / 1e9
					}
					if ceiling != nil && k.family == "gemm" {
						c, err := ceiling(k.name, s, th)
						if err != nil {
							return nil, err
						}
						res.CeilingName, res.CeilingNote = c.Name, c.Note
						if c.GOPS > 0 {
							res.Ceiling, res.Ratio = c.GOPS, res.GOPS/c.GOPS
						}
					}
					out = append(out, res)
					done++
					if o.Progress != nil {
						o.Progress(done, total)
					}
				}
			}
		}
	}
	// Report kernel by kernel, in the order asked, as before grouping.
	order := map[string]int{}
	for i, k := range ks {
		order[k.name] = i
	}
	sort.SliceStable(out, func(a, b int) bool { return order[out[a].Kernel] < order[out[b].Kernel] })
	fillVsFP32(out)
	return out, nil
}

// shapesFor gives a kernel its shapes: GEMM shapes as given; bags use
// their own (batch, width, bag length) set.
func shapesFor(k kernel, gemm []Shape) []Shape {
	switch k.family {
	case "bag":
		return bagShapes
	case "interact":
		return interactShapes
	}
	return gemm
}

// fillVsFP32 sets VsFP32 from the fp32 kernel's result at the same point.
func fillVsFP32(rs []Result) {
	type key struct {
		kernel       string
		m, n, k, thr int
	}
	idx := map[key]Result{}
	for _, r := range rs {
		idx[key{r.Kernel, r.M, r.N, r.K, r.Threads}] = r
	}
	for i, r := range rs {
		k, _ := find(r.Kernel)
		if k.fp32 == "" || k.fp32 == k.name {
			continue
		}
		base, ok := idx[key{k.fp32, r.M, r.N, r.K, r.Threads}]
		if !ok {
			continue
		}
		if k.family == "bag" && base.RowsPerSec > 0 {
			rs[i].VsFP32 = r.RowsPerSec / base.RowsPerSec
		} else if base.GOPS > 0 {
			rs[i].VsFP32 = r.GOPS / base.GOPS
		}
	}
}

// Features is the CPU's SIMD feature list, for the report header.
func Features() string { return kernels.Features() }

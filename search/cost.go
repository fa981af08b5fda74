package search

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/rqtools/rq/bench"
	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// CostModel predicts a plan's forward time from kernel speeds measured on
// this machine at the model's own layer shapes: GEMMs in GOPS per kernel
// and shape, embedding bags in lookups per second per format and table
// shape. It covers the FC layers and the bags, the parts a plan changes;
// the interaction and the rest cost the same under every plan.
type CostModel struct {
	Version int         `json:"version"`
	Machine CostMachine `json:"machine"`
	Batch   int         `json:"batch"`
	Threads int         `json:"threads"`
	// GEMM maps "kernel MxNxK" to GOPS.
	GEMM map[string]float64 `json:"gemm"`
	// Bags maps "format rows dim" to pooled lookups per second.
	Bags map[string]float64 `json:"bags"`
}

// costVersion 2 added Machine (version 1 had the CPU's features only, and
// was reused by a purego build or after a new kernel implementation).
// Version 3: the MX bags' AVX-512 kernels decode by arithmetic (3-15x the
// gathering kernels of the same name), so figures cached with the old ones
// are measured again. Bump it whenever an implementation keeps its name
// but changes its speed.
const costVersion = 3

// CostMachine is what the measured speeds depend on besides the shapes,
// batch and thread count: the CPU and, for each kernel family the cost
// model measures, the implementation that runs it in this binary (a
// purego build runs "go" everywhere; an AMX kernel makes int8 and bf16
// several times cheaper than the VNNI one on the same CPU). A cached model
// is used only by a binary on a machine with the same CostMachine.
type CostMachine struct {
	CPU      string `json:"cpu"` // the CPU's model name, "" where the OS does not say
	Arch     string `json:"arch"`
	Features string `json:"cpu_features"` // kernels.Features()
	// Impls maps a kernel family to its implementation's name.
	Impls map[string]string `json:"impls"`
}

// ThisMachine is the CostMachine of this CPU and binary.
func ThisMachine() CostMachine {
	return CostMachine{CPU: cpuModel(), Arch: runtime.GOARCH, Features: kernels.Features(), Impls: map[string]string{
		"gemm-fp32": kernels.SgemmImpl(),
		"gemm-fp16": kernels.F16GemmImpl(),
		"gemm-bf16": kernels.BF16GemmImpl(),
		"gemm-int8": kernels.I8GemmImpl(),
		"bag":       kernels.BagImpl(),
		"bag-mx":    kernels.MXBagImpl(),
		"bag-mixed": kernels.MixedBagImpl(),
	}}
}

// key is m as one line: its parts in a fixed order, implementations
// sorted by family, each value quoted so no two machines share a line.
func (m CostMachine) key() string {
	fams := make([]string, 0, len(m.Impls))
	for f := range m.Impls {
		fams = append(fams, f)
	}
	sort.Strings(fams)
	var b strings.Builder
	fmt.Fprintf(&b, "cpu=%q arch=%q features=%q", m.CPU, m.Arch, m.Features)
	for _, f := range fams {
		fmt.Fprintf(&b, " %q=%q", f, m.Impls[f])
	}
	return b.String()
}

// cpuModel is the CPU's model name from /proc/cpuinfo (Linux's x86 "model
// name"); elsewhere "", and the features and implementations still tell
// machines apart.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CostOptions configure LoadOrMeasureCost.
type CostOptions struct {
	Batch   int // examples per batch the time is predicted for (default 2048)
	Threads int // default 1
	// CacheDir holds measured models; "" means os.UserCacheDir()/rq. A
	// model is measured once per CostMachine (CPU and the kernels'
	// implementations in this binary), thread count, batch and layer shapes.
	CacheDir string
	MinTime  time.Duration // per measurement (default 20ms)
}

// fcKernel names the GEMM an FC layer at lp runs, as the cost model's
// keys do: "gemm-" and the precision's name, "-dynamic" after an integer
// one with dynamic activations ("gemm-int8" is static, as cached cost
// models have always named it).
//
// An MX layer runs the bf16 GEMM on its decoded weights (model.MXFC), so it
// is timed as "gemm-bf16"; rounding MX activations per row (the dynamic
// rungs, which no default ladder holds) adds a pass over the input that
// the model does not count.
func fcKernel(lp quantize.LayerPlan) string {
	p := lp.Precision
	if !p.ForFC() {
		p = precision.FP32
	}
	if p.IsMX() {
		p = precision.BF16
	}
	k := "gemm-" + p.String()
	if p.IsInteger() && lp.Activation != quantize.Static {
		k += "-dynamic"
	}
	return k
}

// allFCKernels and allTableFormats are what the cost model measures:
// every FC GEMM (integer ones static and dynamic; MX layers run bf16's) and every table
// precision (row-wise and MX formats), in the vocabulary's order.
var allFCKernels, allTableFormats = func() ([]string, []precision.Precision) {
	var ks []string
	for _, p := range precision.FC() {
		if p.IsMX() {
			continue // timed as bf16, above
		}
		ks = append(ks, fcKernel(quantize.LayerPlan{Precision: p, Activation: quantize.Static}))
		if p.IsInteger() {
			ks = append(ks, fcKernel(quantize.LayerPlan{Precision: p, Activation: quantize.Dynamic}))
		}
	}
	return ks, precision.Tables()
}()

func gemmKey(kernel string, m, n, k int) string { return fmt.Sprintf("%s %dx%dx%d", kernel, m, n, k) }

// bagRowsCap bounds the synthetic table a bag is timed on (as fp32 bytes):
// past it, lookups miss the caches anyway.
const bagRowsCap = 256 << 20

// bagKey names a bag figure: the table precision's label ("int4-rowwise",
// "mxfp4", as the row-wise formats' names have always been), the timed
// rows and the dim.
func bagKey(p precision.Precision, rows int64, dim int) string {
	return fmt.Sprintf("%s %d %d", p.TableLabel(), min(rows, int64(bagRowsCap/(4*max(dim, 1)))), dim)
}

// Seconds predicts the time of layer l at lp for one batch; 0 when the
// model has no figure for it.
func (c *CostModel) Seconds(l Layer, lp quantize.LayerPlan) float64 {
	if c == nil {
		return 0
	}
	if l.Kind == KindTable {
		r := c.Bags[bagKey(lp.Precision, l.Rows, l.Dim)]
		if r <= 0 {
			return 0
		}
		return float64(c.Batch) / r
	}
	g := c.GEMM[gemmKey(fcKernel(lp), c.Batch, l.Out, l.In)]
	if g <= 0 {
		return 0
	}
	return 2 * float64(c.Batch) * float64(l.Out) * float64(l.In) / (g * 1e9)
}

// costFile names the cache file for a machine, an options set and a set
// of shapes.
func costFile(dir string, m CostMachine, o CostOptions, layers []Layer) string {
	var keys []string
	for _, l := range layers {
		if l.Kind == KindTable {
			keys = append(keys, bagKey(precision.FP32, l.Rows, l.Dim))
		} else {
			keys = append(keys, gemmKey("", o.Batch, l.Out, l.In))
		}
	}
	sort.Strings(keys)
	h := sha256.Sum256([]byte(fmt.Sprintf("v%d|%s|%d|%d|%s", costVersion, m.key(), o.Batch, o.Threads, strings.Join(keys, "|"))))
	return filepath.Join(dir, "cost-"+hex.EncodeToString(h[:8])+".json")
}

// costOptions is how a cached model is read: strictly, so that a model of
// another version (version 1 had no machine) or a damaged file is measured
// again rather than misread.
var costOptions = strictjson.Options{Kind: "cost model", Versions: []int{costVersion}}

// LoadOrMeasureCost returns the cost model for layers on this machine,
// from the cache when it has one, else measured (a few seconds) and cached.
func LoadOrMeasureCost(ctx context.Context, layers []Layer, o CostOptions) (*CostModel, error) {
	return loadOrMeasureCost(ctx, layers, o, ThisMachine(), measureCost)
}

// loadOrMeasureCost is LoadOrMeasureCost on machine m with measure, which
// tests replace (the kernels' implementations can be switched only inside
// package kernels).
func loadOrMeasureCost(ctx context.Context, layers []Layer, o CostOptions, m CostMachine,
	measure func(context.Context, []Layer, CostOptions, CostMachine) (*CostModel, error)) (*CostModel, error) {
	if o.Batch <= 0 {
		o.Batch = 2048
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.MinTime <= 0 {
		o.MinTime = 20 * time.Millisecond
	}
	dir := o.CacheDir
	if dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory for the cost model: %w", err)
		}
		dir = filepath.Join(d, "rq")
	}
	path := costFile(dir, m, o, layers)
	var cached CostModel
	if err := strictjson.ReadFile(path, &cached, costOptions); err == nil && cached.Machine.key() == m.key() &&
		cached.Batch == o.Batch && cached.Threads == o.Threads && cached.complete(layers) {
		return &cached, nil
	}
	c, err := measure(ctx, layers, o, m)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		b, _ := json.MarshalIndent(c, "", "  ")
		_ = atomicfile.WriteBytes(path, b) // a cache: failing to keep it only costs a re-measure
	}
	return c, nil
}

// complete reports whether c has a positive figure for every kernel or
// format at every layer, so that no rung is predicted to cost nothing.
func (c *CostModel) complete(layers []Layer) bool {
	for _, l := range layers {
		if l.Kind == KindTable {
			for _, f := range allTableFormats {
				if !(c.Bags[bagKey(f, l.Rows, l.Dim)] > 0) {
					return false
				}
			}
			continue
		}
		for _, k := range allFCKernels {
			if !(c.GEMM[gemmKey(k, c.Batch, l.Out, l.In)] > 0) {
				return false
			}
		}
	}
	return true
}

// measureCost measures the kernels m names (those of this binary: m is
// recorded, not chosen).
func measureCost(ctx context.Context, layers []Layer, o CostOptions, m CostMachine) (*CostModel, error) {
	c := &CostModel{Version: costVersion, Machine: m, Batch: o.Batch, Threads: o.Threads,
		GEMM: map[string]float64{}, Bags: map[string]float64{}}
	seen := map[bench.Shape]bool{}
	var shapes []bench.Shape
	for _, l := range layers {
		if l.Kind == KindFC {
			s := bench.Shape{M: o.Batch, N: l.Out, K: l.In}
			if !seen[s] {
				seen[s] = true
				shapes = append(shapes, s)
			}
		}
	}
	if len(shapes) > 0 {
		rs, err := bench.Run(ctx, bench.Options{Kernels: allFCKernels, Shapes: shapes, Threads: []int{o.Threads}, MinTime: o.MinTime, Trials: 2}, nil)
		if err != nil {
			return nil, fmt.Errorf("measuring the GEMM kernels: %w", err)
		}
		for _, r := range rs {
			c.GEMM[gemmKey(r.Kernel, r.M, r.N, r.K)] = r.GOPS
		}
	}
	for _, l := range layers {
		if l.Kind != KindTable {
			continue
		}
		for _, f := range allTableFormats {
			key := bagKey(f, l.Rows, l.Dim)
			if _, ok := c.Bags[key]; ok {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			c.Bags[key] = measureBag(f, l.Rows, l.Dim, o)
		}
	}
	return c, nil
}

// measureBag times bags of one random index (criteo's layout) from a
// synthetic table of the layer's shape at precision p, through the bag
// kernel a table at p runs (kernels.EmbeddingBag for the row-wise formats,
// EmbeddingBagMX for the MX ones); the rate is single-threaded times the
// thread count (bags split by rows scale nearly linearly).
func measureBag(p precision.Precision, rows int64, dim int, o CostOptions) float64 {
	rows = max(min(rows, int64(bagRowsCap/(4*max(dim, 1)))), 1)
	rng := rand.New(rand.NewPCG(5, uint64(rows)*uint64(dim)))
	w := make([]float32, rows*int64(dim))
	for i := range w {
		w[i] = rng.Float32() - 0.5
	}
	var pool func(idx []int64, off []int32, out []float32, m int)
	if p == precision.Mixed {
		t, err := mixedCostTable(w, rows, dim, rng)
		if err != nil {
			panic(err) // finite and in range by construction
		}
		pool = func(idx []int64, off []int32, out []float32, m int) { t.Pool(idx, off, nil, out, dim, 0, m) }
	} else if mf, ok := kernels.MXFormatOf(p); ok {
		t, err := quantize.QuantizeMXTable(mf, "synthetic", w, rows, dim)
		if err != nil {
			panic(err) // finite by construction
		}
		pool = func(idx []int64, off []int32, out []float32, m int) { t.Pool(idx, off, nil, out, dim, 0, m) }
	} else {
		f, _ := kernels.TableFormatOf(p)
		data := make([]byte, rows*int64(f.RowBytes(dim)))
		quantize.QuantizeTableRows(f, false, w, int(rows), dim, data)
		pool = func(idx []int64, off []int32, out []float32, m int) {
			kernels.EmbeddingBag(f, data, rows, dim, idx, off, nil, false, out, dim, 0, m)
		}
	}
	m := o.Batch
	// Indices drawn up front, so the timing is of the lookups alone.
	var sets [8][]int64
	for j := range sets {
		sets[j] = make([]int64, m)
		for i := range sets[j] {
			sets[j][i] = rng.Int64N(rows)
		}
	}
	off := make([]int32, m+1)
	for i := range off {
		off[i] = int32(i)
	}
	out := make([]float32, m*dim)
	n := 0
	start := time.Now()
	for time.Since(start) < o.MinTime {
		pool(sets[n%len(sets)], off, out, m)
		n++
	}
	return float64(n*m) / time.Since(start).Seconds() * float64(o.Threads)
}

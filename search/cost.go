package search

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rqtools/rq/bench"
	"github.com/rqtools/rq/internal/atomicfile"
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
	Version  int    `json:"version"`
	Features string `json:"cpu_features"`
	Batch    int    `json:"batch"`
	Threads  int    `json:"threads"`
	// GEMM maps "kernel MxNxK" to GOPS.
	GEMM map[string]float64 `json:"gemm"`
	// Bags maps "format rows dim" to pooled lookups per second.
	Bags map[string]float64 `json:"bags"`
}

const costVersion = 1

// CostOptions configure LoadOrMeasureCost.
type CostOptions struct {
	Batch   int // examples per batch the time is predicted for (default 2048)
	Threads int // default 1
	// CacheDir holds measured models; "" means os.UserCacheDir()/rq. A
	// model is measured once per CPU, thread count, batch and layer shapes.
	CacheDir string
	MinTime  time.Duration // per measurement (default 20ms)
}

// fcKernel names the GEMM an FC layer at lp runs, as the cost model's
// keys do: "gemm-" and the precision's name, "-dynamic" after an integer
// one with dynamic activations ("gemm-int8" is static, as cached cost
// models have always named it).
func fcKernel(lp quantize.LayerPlan) string {
	p := lp.Precision
	if !p.ForFC() {
		p = precision.FP32
	}
	k := "gemm-" + p.String()
	if p.IsInteger() && lp.Activation != quantize.Static {
		k += "-dynamic"
	}
	return k
}

// allFCKernels and allTableFormats are what the cost model measures:
// every FC precision (integer ones static and dynamic) and every table
// format, in the vocabulary's order.
var allFCKernels, allTableFormats = func() ([]string, []kernels.TableFormat) {
	var ks []string
	for _, p := range precision.FC() {
		ks = append(ks, fcKernel(quantize.LayerPlan{Precision: p, Activation: quantize.Static}))
		if p.IsInteger() {
			ks = append(ks, fcKernel(quantize.LayerPlan{Precision: p, Activation: quantize.Dynamic}))
		}
	}
	var fs []kernels.TableFormat
	for _, p := range precision.Tables() {
		f, _ := kernels.TableFormatOf(p)
		fs = append(fs, f)
	}
	return ks, fs
}()

func gemmKey(kernel string, m, n, k int) string { return fmt.Sprintf("%s %dx%dx%d", kernel, m, n, k) }

// bagRowsCap bounds the synthetic table a bag is timed on (as fp32 bytes):
// past it, lookups miss the caches anyway.
const bagRowsCap = 256 << 20

func bagKey(f kernels.TableFormat, rows int64, dim int) string {
	return fmt.Sprintf("%s %d %d", f, min(rows, int64(bagRowsCap/(4*max(dim, 1)))), dim)
}

// Seconds predicts the time of layer l at lp for one batch; 0 when the
// model has no figure for it.
func (c *CostModel) Seconds(l Layer, lp quantize.LayerPlan) float64 {
	if c == nil {
		return 0
	}
	if l.Kind == KindTable {
		r := c.Bags[bagKey(tableFormat(lp), l.Rows, l.Dim)]
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

// costFile names the cache file for a machine and a set of shapes.
func costFile(dir string, o CostOptions, layers []Layer) string {
	var keys []string
	for _, l := range layers {
		if l.Kind == KindTable {
			keys = append(keys, bagKey(kernels.TableF32, l.Rows, l.Dim))
		} else {
			keys = append(keys, gemmKey("", o.Batch, l.Out, l.In))
		}
	}
	sort.Strings(keys)
	h := sha256.Sum256([]byte(fmt.Sprintf("v%d|%s|%d|%d|%s", costVersion, kernels.Features(), o.Batch, o.Threads, strings.Join(keys, "|"))))
	return filepath.Join(dir, "cost-"+hex.EncodeToString(h[:8])+".json")
}

// LoadOrMeasureCost returns the cost model for layers on this machine,
// from the cache when it has one, else measured (a few seconds) and cached.
func LoadOrMeasureCost(ctx context.Context, layers []Layer, o CostOptions) (*CostModel, error) {
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
	path := costFile(dir, o, layers)
	if b, err := os.ReadFile(path); err == nil {
		var c CostModel
		if json.Unmarshal(b, &c) == nil && c.Version == costVersion && c.Features == kernels.Features() && c.complete(layers) {
			return &c, nil
		}
	}
	c, err := measureCost(ctx, layers, o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		b, _ := json.MarshalIndent(c, "", "  ")
		_ = atomicfile.WriteBytes(path, b) // a cache: failing to keep it only costs a re-measure
	}
	return c, nil
}

func (c *CostModel) complete(layers []Layer) bool {
	for _, l := range layers {
		if l.Kind == KindTable {
			if _, ok := c.Bags[bagKey(kernels.TableF32, l.Rows, l.Dim)]; !ok {
				return false
			}
		} else if _, ok := c.GEMM[gemmKey("gemm-fp32", c.Batch, l.Out, l.In)]; !ok {
			return false
		}
	}
	return true
}

func measureCost(ctx context.Context, layers []Layer, o CostOptions) (*CostModel, error) {
	c := &CostModel{Version: costVersion, Features: kernels.Features(), Batch: o.Batch, Threads: o.Threads,
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
// synthetic table of the layer's shape; the rate is single-threaded times
// the thread count (bags split by rows scale nearly linearly).
func measureBag(f kernels.TableFormat, rows int64, dim int, o CostOptions) float64 {
	rows = max(min(rows, int64(bagRowsCap/(4*max(dim, 1)))), 1)
	rng := rand.New(rand.NewPCG(5, uint64(rows)*uint64(dim)))
	w := make([]float32, rows*int64(dim))
	for i := range w {
		w[i] = rng.Float32() - 0.5
	}
	data := make([]byte, rows*int64(f.RowBytes(dim)))
	quantize.QuantizeTableRows(f, false, w, int(rows), dim, data)
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
		kernels.EmbeddingBag(f, data, rows, dim, sets[n%len(sets)], off, nil, false, out, dim, 0, m)
		n++
	}
	return float64(n*m) / time.Since(start).Seconds() * float64(o.Threads)
}

package cmd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rqtools/rq/bench"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type benchOptions struct {
	*globalOptions
	kernels []string
	shapes  string
	threads []int
	minTime time.Duration
	trials  int
	ceiling string
	json    bool
}

func newBenchCmd(g *globalOptions, runF func(context.Context, *benchOptions) error) *cobra.Command {
	opts := &benchOptions{globalOptions: g}
	if runF == nil {
		runF = runBench
	}
	c := &cobra.Command{
		Use:   "bench [--kernel K]... [--shapes M,N,K;...] [--threads 1,2] [--ceiling onednn_gemm] [--json]",
		Short: "Measure rq's kernels on this machine, beside oneDNN's ceiling",
		Long: `Measure rq's kernels (GEMMs at fp32, fp16, bf16 and int8; embedding bags at every
precision) on DLRM shapes, one figure per kernel, shape and thread count: GOPS for GEMMs
(GFLOPS for the float ones), GB/s of table bytes and rows/s for bags.

With --ceiling, the oneDNN peer binary (built from ../shared/bench/onednn_gemm.c; see
scripts/bench-ceiling.sh) runs the same GEMM shapes with the same threads, and each row gains
the ceiling and the ratio. "vs fp32" compares a kernel with the fp32 kernel of its family at the
same point. Figures are best-of-trials, and the kernels of a family (the GEMMs; not the bags,
whose tables take 1 GiB each) take their trials in turn at each shape, so that drift in the
machine's speed hits them alike; machines are noisy, so read ratios from one run.`,
		Example: `  rq bench --kernel gemm-int8 --kernel gemm-fp32 --shapes 2048,512,512 --threads 1,2
  rq bench --ceiling /tmp/onednn_gemm --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error { return runF(c.Context(), opts) },
	}
	fs := c.Flags()
	fs.StringSliceVar(&opts.kernels, "kernel", nil, "kernels to run (default: all): "+strings.Join(bench.Kernels(), ", "))
	fs.StringVar(&opts.shapes, "shapes", "", "GEMM shapes as M,N,K separated by ';' (default: DLRM layers at M = 1, 128, 2048)")
	fs.IntSliceVar(&opts.threads, "threads", []int{1}, "thread counts to measure")
	fs.DurationVar(&opts.minTime, "min-time", 200*time.Millisecond, "least duration of one trial")
	fs.IntVar(&opts.trials, "trials", 3, "trials per point (the best is kept)")
	fs.StringVar(&opts.ceiling, "ceiling", "", "oneDNN peer binary (onednn_gemm) to measure the ceiling with")
	fs.BoolVar(&opts.json, "json", false, "print one JSON array instead of a table")
	return c
}

// parseShapes reads "M,N,K;M,N,K".
func parseShapes(s string) ([]bench.Shape, error) {
	if s == "" {
		return nil, nil
	}
	var out []bench.Shape
	for _, part := range strings.Split(s, ";") {
		f := strings.Split(strings.TrimSpace(part), ",")
		if len(f) != 3 {
			return nil, usageErrorf("--shapes: %q is not M,N,K", part)
		}
		var v [3]int
		for i, x := range f {
			n, err := strconv.Atoi(strings.TrimSpace(x))
			if err != nil || n < 1 || n > 1<<16 {
				return nil, usageErrorf("--shapes: %q in %q is not a size between 1 and 65536", x, part)
			}
			v[i] = n
		}
		out = append(out, bench.Shape{M: v[0], N: v[1], K: v[2]})
	}
	return out, nil
}

func runBench(ctx context.Context, opts *benchOptions) error {
	shapes, err := parseShapes(opts.shapes)
	if err != nil {
		return err
	}
	if err := bench.CheckShapes(shapes); err != nil {
		return usageErrorf("--shapes: %v", err)
	}
	for _, t := range opts.threads {
		if t < 1 || t > 1024 {
			return usageErrorf("--threads: %d is not between 1 and 1024", t)
		}
	}
	known := map[string]bool{}
	for _, k := range bench.Kernels() {
		known[k] = true
	}
	for _, k := range opts.kernels {
		if !known[k] {
			return usageErrorf("--kernel: unknown kernel %q (known: %s)", k, strings.Join(bench.Kernels(), ", "))
		}
	}
	var ceil func(string, bench.Shape, int) (float64, string, bool)
	if opts.ceiling != "" {
		ceil = bench.OneDNN(ctx, opts.ceiling)
	}
	bar := newProgress(opts.globalOptions, 0, "bench")
	rs, err := bench.Run(ctx, bench.Options{Kernels: opts.kernels, Shapes: shapes, Threads: opts.threads, MinTime: opts.minTime, Trials: opts.trials,
		Progress: func(done, total int) { bar.setTotal(int64(total)); bar.set(int64(done)) }}, ceil)
	bar.done()
	if err != nil {
		return err
	}
	if opts.ceiling != "" {
		found := false
		for _, r := range rs {
			found = found || r.Ceiling > 0
		}
		if !found {
			return fmt.Errorf("--ceiling %s: the peer binary gave no figures (is it built from onednn_gemm.c, and is libdnnl installed?)", opts.ceiling)
		}
	}
	if opts.json {
		return report.JSON(opts.stdout, rs)
	}
	return report.BenchTable(opts.stdout, bench.Features(), rs)
}

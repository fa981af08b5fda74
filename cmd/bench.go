package cmd

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rqtools/rq/bench"
	"github.com/rqtools/rq/kernels"
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
	// tableMiB is the fp32 size of the bag benchmarks' table.
	tableMiB int
}

func newBenchCmd(g *globalOptions, runF func(context.Context, *benchOptions) error) *cobra.Command {
	opts := &benchOptions{globalOptions: g}
	if runF == nil {
		runF = runBench
	}
	c := &cobra.Command{
		Use:   "bench [--kernel K]... [--shapes M,N,K;...] [--threads 1,2] [--ceiling onednn_matmul] [--json]",
		Short: "Measure rq's kernels on this machine, beside oneDNN's ceiling",
		Long: `Measure rq's kernels (GEMMs at fp32, fp16, bf16 and int8; embedding bags at every
precision, row-wise and MX) on DLRM shapes, one figure per kernel, shape and thread count: GOPS
for GEMMs (GFLOPS for the float ones), GB/s of table bytes read and rows/s for bags. Every bag
pools the same fp32 table (--table-mib, 1 GiB by default: far beyond the caches, so lookups
miss as in production), quantized to its format, with the same indices.

With --ceiling, a oneDNN peer binary runs the same GEMM shapes with the same threads
(OMP_NUM_THREADS), and each GEMM row gains the ceiling and the ratio. The peer is
../shared/bench/onednn_matmul.cpp, oneDNN's matmul primitive (AMX where the CPU has it): int8
rows (static and dynamic) against its int8 column, bf16 against bf16, fp32 and fp16 (whose math
is fp32) against fp32; or the older onednn_gemm.c (int8 against u8s8s32, the float kernels
against sgemm). rq tells them apart by the line they print; scripts/bench-ceiling.sh builds
either. A row at a thread count oneDNN does not run (a build without OpenMP) has a note instead
of a ceiling; a peer that fails or prints something else stops the run. "vs fp32" compares a kernel with the fp32 kernel of its family at the
same point. Figures are best-of-trials, and the kernels of a family (the GEMMs; the bags, whose
tables are all held at once: about 3.3 GiB for every bag at the default size) take their trials
in turn at each shape, so that drift in the machine's speed hits them alike; machines are
noisy, so read ratios from one run.`,
		Example: `  rq bench --kernel gemm-int8 --kernel gemm-fp32 --shapes 2048,512,512 --threads 1,2
  rq bench --ceiling /tmp/onednn_matmul --kernel gemm-int8 --kernel gemm-bf16 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error { return runF(c.Context(), opts) },
	}
	fs := c.Flags()
	fs.StringSliceVar(&opts.kernels, "kernel", nil, "kernels to run (default: all): "+strings.Join(bench.Kernels(), ", "))
	fs.StringVar(&opts.shapes, "shapes", "", "GEMM shapes as M,N,K separated by ';' (default: DLRM layers at M = 1, 128, 2048)")
	fs.IntSliceVar(&opts.threads, "threads", []int{1}, "thread counts to measure")
	fs.DurationVar(&opts.minTime, "min-time", 200*time.Millisecond, "least duration of one trial")
	fs.IntVar(&opts.trials, "trials", 3, "trials per point (the best is kept)")
	fs.StringVar(&opts.ceiling, "ceiling", "", "oneDNN peer binary (onednn_matmul, or onednn_gemm) to measure the GEMMs' ceiling with")
	fs.BoolVar(&opts.json, "json", false, "print one JSON array instead of a table")
	fs.IntVar(&opts.tableMiB, "table-mib", bench.DefaultTableBytes>>20, "fp32 size of the bags' table in MiB (each format's copy is quantized from it, all held at once); below the L3 size it measures in-cache speed")
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
	if opts.tableMiB < 1 || opts.tableMiB > 1<<20 {
		return usageErrorf("--table-mib: %d is not between 1 and 1048576", opts.tableMiB)
	}
	tableBytes := int64(opts.tableMiB) << 20
	known := map[string]bool{}
	for _, k := range bench.Kernels() {
		known[k] = true
	}
	for _, k := range opts.kernels {
		if !known[k] {
			return usageErrorf("--kernel: unknown kernel %q (known: %s)", k, strings.Join(bench.Kernels(), ", "))
		}
	}
	if err := bench.CheckTable(opts.kernels, tableBytes); err != nil {
		return usageErrorf("--table-mib: %v", err)
	}
	var ceil bench.CeilingFunc
	if opts.ceiling != "" {
		// Refused before minutes of measuring: a peer that is not there,
		// or a selection it has no figure for.
		if _, err := exec.LookPath(opts.ceiling); err != nil {
			return usageErrorf("--ceiling: %v", err)
		}
		names := opts.kernels
		if len(names) == 0 {
			names = bench.Kernels()
		}
		if !slices.ContainsFunc(names, bench.HasCeiling) {
			return usageErrorf("--ceiling: oneDNN has figures for the GEMM kernels only, and --kernel selects none")
		}
		ceil = bench.NewPeer(ctx, opts.ceiling).Ceiling
	}
	bar := newProgress(opts.globalOptions, 0, "bench")
	rs, err := bench.Run(ctx, bench.Options{Kernels: opts.kernels, Shapes: shapes, Threads: opts.threads, MinTime: opts.minTime, Trials: opts.trials,
		TableBytes: tableBytes, Progress: func(done, total int) { bar.setTotal(int64(total)); bar.set(int64(done)) }}, ceil)
	bar.done()
	if err != nil {
		return err
	}
	if opts.json {
		return report.JSON(opts.stdout, rs) // rows without a ceiling carry ceiling_note
	}
	// The matrix units' state: a user with an AMX CPU learns whether rq
	// may use them (Linux grants tile state on request) and why not.
	features := bench.Features()
	if ok, why := kernels.AMX(); ok {
		features += "; AMX: on"
	} else {
		features += "; AMX: off (" + why + ")"
	}
	if err := report.BenchTable(opts.stdout, features, rs); err != nil {
		return err
	}
	return ceilingNotes(opts.stdout, rs)
}

// ceilingNotes prints, under the table, why rows have no ceiling (once per
// thread count and note), since the table's ceiling column is empty there.
func ceilingNotes(w io.Writer, rs []bench.Result) error {
	seen := map[string]bool{}
	for _, r := range rs {
		if r.CeilingNote == "" {
			continue
		}
		line := fmt.Sprintf("no ceiling at %d threads: %s", r.Threads, r.CeilingNote)
		if seen[line] {
			continue
		}
		seen[line] = true
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

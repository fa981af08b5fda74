package cmd

import (
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/rqtools/rq/dataset"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// dataFlags are the flags of every command that reads a click log.
type dataFlags struct {
	path           string
	rows           string
	denseTransform string
	badRows        string
	format         string
	batch          int
	threads        int
	shard          string
	// fs tells whether --dense-transform was given: MLPerf's dense files and
	// Parquet's float dense columns are already transformed, so the default
	// is none for them.
	fs *pflag.FlagSet
}

func (d *dataFlags) register(fs *pflag.FlagSet) {
	d.fs = fs
	fs.StringVar(&d.path, "data", "", "click log: DLRM processed .npz (X_int, X_cat, y), Criteo TSV (optionally gzipped), MLPerf dlrm-v2's layout (a directory or its day_N_dense.npy, beside day_N_labels.npy and day_N_sparse_multi_hot.npz), or Parquet with columns label, I1..I13, C1..C26 (ids, or lists of ids)")
	fs.StringVar(&d.rows, "rows", "", "row range A:B of the data (0-based, B exclusive; A: or :B allowed)")
	fs.StringVar(&d.denseTransform, "dense-transform", "log1p", "dense feature transform: log1p (negatives clamped to 0, then log(x+1), the DLRM convention) or none (the default for MLPerf's already transformed dense files and Parquet's float dense columns)")
	fs.StringVar(&d.badRows, "bad-rows", "fail", "what to do with a malformed row: fail or skip (skipped rows are counted)")
	fs.StringVar(&d.format, "data-format", "", "data format: npz, tsv, mlperf or parquet (default: told from the path and the file's content)")
	fs.IntVar(&d.batch, "batch", 2048, "examples per batch")
	fs.IntVar(&d.threads, "threads", runtime.NumCPU(), "threads for the forward pass")
}

// registerShard adds --shard, for the commands whose output rq merge takes.
func (d *dataFlags) registerShard(fs *pflag.FlagSet, what string) {
	fs.StringVar(&d.shard, "shard", "", what+" only shard I/N of the rows (batch k of --batch rows goes to shard k mod N), for rq merge")
}

// shardOf is the parsed --shard (the whole selection when not given).
func (d *dataFlags) shardOf() dataset.Shard {
	if d.shard == "" {
		return dataset.Shard{Index: 0, Count: 1}
	}
	sh, _ := dataset.ParseShard(d.shard) // validated by options
	return sh
}

// options validates the flags and turns them into reader options for a
// model with the given dense width and table sizes.
func (d *dataFlags) options(numDense int, tableRows []int64) (dataset.Options, error) {
	o := dataset.Options{BatchSize: d.batch, NumDense: numDense, TableRows: tableRows, Format: d.format}
	if d.path == "" {
		return o, usageErrorf("--data is required")
	}
	if d.batch < 1 {
		return o, usageErrorf("--batch must be at least 1, got %d", d.batch)
	}
	if d.threads < 1 {
		return o, usageErrorf("--threads must be at least 1, got %d", d.threads)
	}
	if d.rows != "" {
		r, err := dataset.ParseRange(d.rows)
		if err != nil {
			return o, usageErrorf("--rows: %v", err)
		}
		o.Rows = r
	} else {
		o.Rows = dataset.Range{Start: 0, End: -1}
	}
	transform := d.denseTransform
	if d.fs != nil && !d.fs.Changed("dense-transform") && (dataset.IsMLPerf(d.path, d.format) || dataset.ParquetDenseIsFloat(d.path, d.format)) {
		transform = "none"
	}
	switch transform {
	case "log1p":
		o.DenseTransform = dataset.Log1p
	case "none":
		o.DenseTransform = dataset.None
	default:
		return o, usageErrorf("--dense-transform must be log1p or none, got %q", d.denseTransform)
	}
	switch d.badRows {
	case "fail":
		o.BadRows = dataset.Fail
	case "skip":
		o.BadRows = dataset.Skip
	default:
		return o, usageErrorf("--bad-rows must be fail or skip, got %q", d.badRows)
	}
	if d.shard != "" {
		sh, err := dataset.ParseShard(d.shard)
		if err != nil {
			return o, usageErrorf("--shard: %v", err)
		}
		o.Shard = sh
	}
	switch d.format {
	case "", "npz", "tsv", "mlperf", "parquet":
	default:
		return o, usageErrorf("--data-format must be npz, tsv, mlperf or parquet, got %q", d.format)
	}
	return o, nil
}

// progress is a progress bar on stderr, or nothing when stderr is not a
// terminal or --quiet was given.
type progress struct {
	bar *progressbar.ProgressBar
}

func newProgress(g *globalOptions, total int64, what string) *progress {
	f, ok := g.stderr.(*os.File)
	if g.quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	if total <= 0 {
		total = -1
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// set moves the bar to n rows done.
func (p *progress) set(n int64) {
	if p.bar != nil {
		p.bar.Set64(n)
	}
}

// setTotal changes the bar's total (a count learnt after the start).
func (p *progress) setTotal(n int64) {
	if p.bar != nil && p.bar.GetMax64() != n {
		p.bar.ChangeMax64(n)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar.Clear()
	}
}

// rowsTotal is how many rows a reader will produce, when it can tell.
func rowsTotal(r dataset.Reader) int64 {
	if t, ok := r.(dataset.RowsReader); ok {
		return t.SelectedRows()
	}
	return -1
}

// data adds --data to the paths checked before any work: for MLPerf's layout
// the day's three files (a directory is found, not read), otherwise the path.
// A directory holding no MLPerf day stays a usage error, as any directory
// was before; other layout errors (two days, no labels file) are left to the
// reader, whose message says what it wanted.
func (f *pathSet) data(d *dataFlags) *pathSet {
	if d.path != "" && dataset.IsMLPerf(d.path, d.format) {
		dense, labels, sparse, err := dataset.MLPerfFiles(d.path)
		if err == nil {
			return f.input("--data", dense).input("--data", labels).input("--data", sparse)
		}
		if days, _ := filepath.Glob(filepath.Join(d.path, "day_*_dense.npy")); len(days) > 0 {
			return f
		}
	}
	return f.input("--data", d.path)
}

package cmd

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
	labelCol       string
	denseCols      string
	sparseCols     string
	// fs tells whether --dense-transform was given: MLPerf's dense files and
	// Parquet's float dense columns are already transformed, so the default
	// is none for them.
	fs *pflag.FlagSet
}

func (d *dataFlags) register(fs *pflag.FlagSet) {
	d.fs = fs
	fs.StringVar(&d.path, "data", "", "click log: DLRM processed .npz (X_int, X_cat, y), Criteo TSV (optionally gzipped), MLPerf dlrm-v2's layout (a directory of day_N_dense.npy, day_N_labels.npy and day_N_sparse_multi_hot.npz, days read in order, or one day's dense file), or Parquet with columns label, I1..I13, C1..C26 (ids, or lists of ids): a file or a directory of *.parquet parts read in name order")
	fs.StringVar(&d.rows, "rows", "", "row range A:B of the data (0-based, B exclusive; A: or :B allowed)")
	fs.StringVar(&d.denseTransform, "dense-transform", "log1p", "dense feature transform: log1p (negatives clamped to 0, then log(x+1), the DLRM convention) or none (the default for MLPerf's already transformed dense files and Parquet's float dense columns)")
	fs.StringVar(&d.badRows, "bad-rows", "fail", "what to do with a malformed row: fail or skip (skipped rows are counted)")
	fs.StringVar(&d.format, "data-format", "", "data format: npz, tsv, mlperf or parquet (default: told from the path and the file's content)")
	fs.StringVar(&d.labelCol, "label-col", "", "Parquet only: the label column's name (default label)")
	fs.StringVar(&d.denseCols, "dense-cols", "", "Parquet only: the dense columns' names, comma-separated, as many as the model's dense inputs (default I1,I2,...)")
	fs.StringVar(&d.sparseCols, "sparse-cols", "", "Parquet only: the id columns' names, comma-separated, one per embedding table in table order (default C1,C2,...)")
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
	switch d.format {
	case "", "npz", "tsv", "mlperf", "parquet":
	default:
		return o, usageErrorf("--data-format must be npz, tsv, mlperf or parquet, got %q", d.format)
	}
	cols, err := d.columns(numDense, tableRows)
	if err != nil {
		return o, err
	}
	o.Columns = cols
	transform := d.denseTransform
	if d.fs != nil && !d.fs.Changed("dense-transform") && (dataset.IsMLPerf(d.path, d.format) || dataset.ParquetDenseIsFloat(d.path, d.format, cols)) {
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
	return o, nil
}

// columns reads --label-col, --dense-cols and --sparse-cols: plain comma
// lists of names, as many as the model has dense inputs and tables, for
// Parquet only (the other formats have no column names).
func (d *dataFlags) columns(numDense int, tableRows []int64) (dataset.Columns, error) {
	var c dataset.Columns
	if d.labelCol == "" && d.denseCols == "" && d.sparseCols == "" {
		return c, nil
	}
	var given []string
	for _, f := range []struct{ flag, v string }{{"--label-col", d.labelCol}, {"--dense-cols", d.denseCols}, {"--sparse-cols", d.sparseCols}} {
		if f.v != "" {
			given = append(given, f.flag)
		}
	}
	if kind := d.dataKind(); kind != "" && kind != "parquet" {
		return c, usageErrorf("%s: column names apply to Parquet click logs only; --data %s is read as %s, whose columns are by position", strings.Join(given, ", "), d.path, kind)
	}
	list := func(flag, v string) ([]string, error) {
		if v == "" {
			return nil, nil
		}
		names := strings.Split(v, ",")
		seen := map[string]bool{}
		for i, n := range names {
			names[i] = strings.TrimSpace(n)
			if names[i] == "" {
				return nil, usageErrorf("%s: an empty name in %q (want a plain comma-separated list of column names)", flag, v)
			}
			if seen[names[i]] {
				return nil, usageErrorf("%s: column %q is named twice", flag, names[i])
			}
			seen[names[i]] = true
		}
		return names, nil
	}
	var err error
	c.Label = strings.TrimSpace(d.labelCol)
	if d.labelCol != "" && (c.Label == "" || strings.Contains(c.Label, ",")) {
		return c, usageErrorf("--label-col: %q is not one column name", d.labelCol)
	}
	if c.Dense, err = list("--dense-cols", d.denseCols); err != nil {
		return c, err
	}
	if c.Sparse, err = list("--sparse-cols", d.sparseCols); err != nil {
		return c, err
	}
	if c.Dense != nil && numDense > 0 && len(c.Dense) != numDense {
		return c, usageErrorf("--dense-cols names %d columns, but the model takes %d dense inputs", len(c.Dense), numDense)
	}
	if c.Sparse != nil && tableRows != nil && len(c.Sparse) != len(tableRows) {
		return c, usageErrorf("--sparse-cols names %d columns, but the model has %d embedding tables (one column each, in table order)", len(c.Sparse), len(tableRows))
	}
	names := map[string]string{}
	for _, g := range []struct {
		flag  string
		names []string
	}{{"--label-col", []string{c.Label}}, {"--dense-cols", c.Dense}, {"--sparse-cols", c.Sparse}} {
		for _, n := range g.names {
			if n == "" {
				continue
			}
			if prev, ok := names[n]; ok {
				return c, usageErrorf("column %q is named by both %s and %s", n, prev, g.flag)
			}
			names[n] = g.flag
		}
	}
	return c, nil
}

// dataKind is the format --data will be read as, when that is known
// without reading it: "" for a path that does not exist yet (its reader
// says so).
func (d *dataFlags) dataKind() string {
	if d.format != "" {
		return d.format
	}
	switch {
	case dataset.IsParquet(d.path, ""):
		return "parquet"
	case dataset.IsMLPerf(d.path, ""):
		return "mlperf (MLPerf dlrm-v2's layout)"
	}
	if _, err := os.Stat(d.path); err != nil {
		return ""
	}
	if strings.EqualFold(filepath.Ext(d.path), ".npz") {
		return "npz"
	}
	f, err := os.Open(d.path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var head [2]byte
	if n, _ := f.Read(head[:]); n == 2 && string(head[:]) == "PK" {
		return "npz"
	}
	return "tsv"
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
// every day's three files, for a directory of Parquet parts every part (a
// directory is listed, not read), otherwise the path. A directory holding
// neither stays a usage error, as any directory was before; other layout
// errors (no labels file) are left to the reader, whose message says what
// it wanted.
func (f *pathSet) data(d *dataFlags) *pathSet {
	if d.path != "" && dataset.IsParquetDir(d.path, d.format) {
		if parts, err := dataset.ParquetParts(d.path); err == nil {
			for _, p := range parts {
				f.input("--data", p)
			}
			return f
		}
	}
	if d.path != "" && dataset.IsMLPerf(d.path, d.format) {
		days, err := dataset.MLPerfDays(d.path)
		if err == nil {
			for _, day := range days {
				f.input("--data", day.Dense).input("--data", day.Labels).input("--data", day.Sparse)
			}
			return f
		}
		if days, _ := filepath.Glob(filepath.Join(d.path, "day_*_dense.npy")); len(days) > 0 {
			return f
		}
	}
	return f.input("--data", d.path)
}

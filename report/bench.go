package report

import (
	"fmt"
	"io"
	"strconv"

	"github.com/rqtools/rq/bench"
)

// BenchTable prints kernel measurements: our figure, the ceiling, the ratio.
func BenchTable(w io.Writer, features string, rs []bench.Result) error {
	if _, err := fmt.Fprintf(w, "CPU features: %s\n", features); err != nil {
		return err
	}
	rows := make([][]string, 0, len(rs))
	opt := func(v float64, dec int, suffix string) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', dec, 64) + suffix
	}
	for _, r := range rs {
		fig := opt(r.GOPS, 1, " GOPS")
		if r.GBps > 0 {
			fig = fmt.Sprintf("%.1f GB/s, %.1fM rows/s", r.GBps, r.RowsPerSec/1e6)
		}
		ceil := opt(r.Ceiling, 1, "")
		if ceil != "" {
			ceil += " (" + r.CeilingName + ")"
		}
		rows = append(rows, []string{r.Kernel, r.Impl, strconv.Itoa(r.M), strconv.Itoa(r.N), strconv.Itoa(r.K), strconv.Itoa(r.Threads),
			fig, ceil, opt(r.Ratio, 2, "x"), opt(r.VsFP32, 2, "x")})
	}
	return Table(w, []string{"kernel", "impl", "m", "n", "k", "threads", "ours", "ceiling", "ratio", "vs fp32"}, rows)
}

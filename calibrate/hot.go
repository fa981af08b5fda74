package calibrate

// HotRows is the table's hottest rows covering share of its rows
// (TableAccess.Hot), for a mixed-precision table (quantize.HotRowSource).
// A document without access counts for the table (ranges.json before
// version 3, or one calibrated on another model) is an error naming the
// file and the table.
func (r *Ranges) HotRows(table string, share float64) ([]int64, error) {
	t, ok := r.TableAccess(table)
	if !ok {
		return nil, r.errorf("", "no row access counts for embedding table %s (a mixed table keeps its most looked-up rows hot; ranges.json of version %d has none for it): re-run rq calibrate with this rq", table, r.Version)
	}
	return t.Hot(share), nil
}

// ListedRows is how many of the table's rows its access counts list (the
// most HotRows returns); false without counts for it.
func (r *Ranges) ListedRows(table string) (int64, bool) {
	t, ok := r.TableAccess(table)
	if !ok {
		return 0, false
	}
	return int64(len(t.HotRows)), true
}

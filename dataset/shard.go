package dataset

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rqtools/rq/model"
)

// Shard picks part of a selection for one of Count workers: the selection's
// batches are dealt round-robin, batch k (0-based, of Options.BatchSize rows)
// going to shard k mod Count. Dealing whole batches keeps every batch the same
// as in an unsharded run, which matters for per-batch computations (dynamic
// per-tensor quantization), so shards merged (rq merge) give exactly the
// unsharded answer; dealing them round-robin needs no row count up front, so
// it works on streams (TSV) too. The zero value (or Count 1) is every batch.
//
// Each shard still reads the rows it skips (decoding them is cheap next to
// the model), so bad rows are found, and counted, by every shard alike.
type Shard struct{ Index, Count int }

// ParseShard reads "I/N" (0 <= I < N).
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	a, err1 := strconv.Atoi(i)
	b, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || b < 1 {
		return Shard{}, fmt.Errorf("shard %q: want I/N with N >= 1, e.g. 0/4", s)
	}
	sh := Shard{Index: a, Count: b}
	return sh, sh.check()
}

// check reports a shard outside 0 <= I < N (the zero value is fine).
func (s Shard) check() error {
	if s != (Shard{}) && (s.Count < 1 || s.Index < 0 || s.Index >= s.Count) {
		return fmt.Errorf("shard %d/%d: want 0 <= I < N", s.Index, s.Count)
	}
	return nil
}

// IsAll reports whether the shard is the whole selection.
func (s Shard) IsAll() bool { return s.Count <= 1 }

func (s Shard) String() string {
	if s.IsAll() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Sharded wraps r to hand out only shard s of its batches; batch is the
// batch size r was opened with (for SelectedRows). A whole shard returns r.
func Sharded(r Reader, s Shard, batch int) Reader {
	if s.IsAll() {
		return r
	}
	sr := &shardReader{Reader: r, shard: s}
	if rr, ok := r.(RowsReader); ok {
		return &shardRowsReader{shardReader: sr, rr: rr, batch: int64(batch)}
	}
	return sr
}

type shardReader struct {
	Reader
	shard Shard
	k     int64 // batches read from the underlying reader
	rows  int64 // rows handed out
}

func (r *shardReader) Next() (*model.Batch, error) {
	for {
		b, err := r.Reader.Next()
		if err != nil {
			return nil, err
		}
		k := r.k
		r.k++
		if k%int64(r.shard.Count) == int64(r.shard.Index) {
			r.rows += int64(b.N)
			return b, nil
		}
	}
}

// Stats counts the shard's rows; Skipped counts every bad row read, which
// each shard reads alike.
func (r *shardReader) Stats() Stats {
	s := r.Reader.Stats()
	s.Rows = r.rows
	return s
}

// Counts passes the file's table sizes through.
func (r *shardReader) Counts() []int64 {
	if c, ok := r.Reader.(CountsReader); ok {
		return c.Counts()
	}
	return nil
}

type shardRowsReader struct {
	*shardReader
	rr    RowsReader
	batch int64
}

func (r *shardRowsReader) TotalRows() int64 { return r.rr.TotalRows() }

// SelectedRows is the shard's share of the selection (bad rows skipped
// aside): its batches' sizes, the last batch being short.
func (r *shardRowsReader) SelectedRows() int64 {
	total := r.rr.SelectedRows()
	batches := (total + r.batch - 1) / r.batch
	n, i := int64(r.shard.Count), int64(r.shard.Index)
	if batches <= i {
		return 0
	}
	mine := (batches-1-i)/n + 1 // batches i, i+n, ... below batches
	rows := mine * r.batch
	if (batches-1)%n == i { // the short last batch is ours
		rows -= batches*r.batch - total
	}
	return rows
}

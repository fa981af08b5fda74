package modelio

import (
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
)

// ResidentTableBytes is how many bytes of a loaded model's memory-mapped
// embedding tables may stay resident while the model runs. Tables are
// taken in network order while they fit; each table beyond is released
// (model.Table.Release) after every batch pooled from it, and read back from
// the page cache by the next. A model that fits runs exactly as before and
// pays nothing; beyond the budget, a model of any size runs in about this
// much memory for its tables plus one table (per concurrent runner), at the
// cost of refaulting the released tables' pages each batch. 1.5 GiB keeps
// an 8 GB model within 2.5 GB of RSS.
var ResidentTableBytes int64 = 1536 << 20

// boundResidentTables sets Release on the memory-mapped tables of net that
// do not fit ResidentTableBytes. Tables in ordinary memory (copied, or read
// on a system without mmap) are left alone: releasing cannot shrink them.
func boundResidentTables(net *model.Network) {
	var kept int64
	for _, t := range net.Tables {
		b := tableBytes(t)
		if len(b) == 0 || !isMapped(b) {
			continue
		}
		if n := int64(len(b)); kept+n <= ResidentTableBytes {
			kept += n
			continue
		}
		t.Release = func() { releasePages(b) }
	}
}

// tableBytes is the memory a table's lookups read: its fp32 weights or its
// stored rows.
func tableBytes(t *model.Table) []byte {
	switch k := t.Kernel.(type) {
	case nil:
		return kernels.F32Bytes(t.Weight)
	case *kernels.BagTable:
		return k.Data
	}
	return nil
}

package modelio

import (
	"unsafe"

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

// hugePage is the transparent huge page size rq asks for (x86-64, arm64
// with 4 KiB base pages).
const hugePage = 2 << 20

// hugeBytesPerLookup is the table bytes one expected lookup pays to copy
// onto huge pages: 60 ns saved against about 1 ns a byte, between the warm
// and the cold cost of the copy (see PrepareTables). On the 65k-row
// synthetic evaluation (13.6 MB 8-bit tables, 65,536 lookups each) no
// table moves: its copy cost 0.05 to 2 s measured, its gain 0.1 s.
const hugeBytesPerLookup = 64

// PrepareTables readies the memory-mapped embedding tables that fit
// ResidentTableBytes (the ones boundResidentTables keeps resident) for a
// run that looks their rows up at random; rq eval calls it, commands that
// read a model once (inspect, quantize) do not. Failures leave a table as
// it was: speed, not correctness, is at stake.
//
// A table whose expected lookups pay for it is copied into anonymous
// memory on transparent huge pages (its file pages released): lookups then
// mostly hit the TLB, which saved about 60 ns a lookup measured (rq eval of
// an int8-dynamic DLRM: about 10% faster). The costs are the table's bytes
// as anonymous memory instead of shared page cache, and the copy, mostly
// the kernel zeroing fresh pages: 0.1 ns a byte on a warm machine, up to
// 3 ns on a VM touching memory for the first time (1.3 GB of fp32 tables:
// 4 s, as long as the whole evaluation of 65k rows). So a table moves only
// when the expected lookups into it pay for its copy at hugeBytesPerLookup;
// lookups < 0 means unknown (a stream), and every table moves. The copies
// are unmapped by Close.
//
// Every other table is read in now (MADV_POPULATE_READ): one sequential
// read where the file is not in the page cache, instead of a random read
// from disk per lookup in the middle of the run (on this VM the page cache
// is dropped within minutes, and a cold int8 evaluation ran at 25-44k
// examples/s, 51k with its tables read in first), and no page faults
// during the run where it is.
func (m *Model) PrepareTables(lookups int64) {
	for _, t := range m.Net.Tables {
		if t.Release != nil {
			continue // beyond the budget: stays mapped and released per batch
		}
		b := tableBytes(t)
		if len(b) == 0 || !isMapped(b) {
			continue
		}
		if len(b) < hugePage || lookups >= 0 && lookups*hugeBytesPerLookup < int64(len(b)) {
			populatePages(b)
			continue
		}
		c, unmap, err := hugeCopy(b)
		if err != nil {
			populatePages(b)
			continue
		}
		switch k := t.Kernel.(type) {
		case nil:
			t.Weight = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(c))), len(t.Weight))
		case *kernels.BagTable:
			k.Data = c
		}
		releasePages(b)
		prev := m.close
		m.close = func() error {
			err := unmap()
			if prev != nil {
				if perr := prev(); err == nil {
					err = perr
				}
			}
			return err
		}
	}
}

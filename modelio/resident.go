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
		rs := tableRegions(t)
		n := mappedBytes(rs)
		if n == 0 {
			continue
		}
		if kept+n <= ResidentTableBytes {
			kept += n
			continue
		}
		t.Release = func() {
			for _, r := range rs {
				releasePages(r.b)
			}
		}
	}
}

// region is memory a table's lookups read, and how to point the table at
// a copy of it.
type region struct {
	b   []byte
	set func([]byte)
}

// tableRegions are the memory a table's lookups read: its fp32 weights,
// its stored rows, or an MX table's codes and scales.
func tableRegions(t *model.Table) []region {
	switch k := t.Kernel.(type) {
	case nil:
		n := len(t.Weight)
		return []region{{kernels.F32Bytes(t.Weight), func(c []byte) {
			t.Weight = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(c))), n)
		}}}
	case *kernels.BagTable:
		return []region{{k.Data, func(c []byte) { k.Data = c }}}
	case *kernels.MXBagTable:
		return []region{{k.Codes, func(c []byte) { k.Codes = c }}, {k.Scales, func(c []byte) { k.Scales = c }}}
	case *kernels.MixedBagTable:
		return mixedRegions(k)
	}
	return nil
}

// mappedBytes is the size of a table's regions when they are all
// memory-mapped, else 0: tables in ordinary memory (copied, or read on a
// system without mmap) are left alone, releasing cannot shrink them.
func mappedBytes(rs []region) int64 {
	var n int64
	for _, r := range rs {
		if len(r.b) == 0 || !isMapped(r.b) {
			return 0
		}
		n += int64(len(r.b))
	}
	return n
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
		rs := tableRegions(t)
		size := mappedBytes(rs)
		if size == 0 {
			continue
		}
		if size < hugePage || lookups >= 0 && lookups*hugeBytesPerLookup < size {
			for _, r := range rs {
				populatePages(r.b)
			}
			continue
		}
		for _, r := range rs {
			if len(r.b) < hugePage { // an MX table's scales: not worth a huge page
				populatePages(r.b)
				continue
			}
			m.hugeRegion(r)
		}
	}
}

// hugeRegion moves one region onto huge pages (read in instead when the
// copy fails), unmapped by Close.
func (m *Model) hugeRegion(r region) {
	c, unmap, err := hugeCopy(r.b)
	if err != nil {
		populatePages(r.b)
		return
	}
	r.set(c)
	releasePages(r.b)
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

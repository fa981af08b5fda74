package modelio

import (
	"os"
	"testing"
	"unsafe"

	"github.com/rqtools/rq/kernels"
	"golang.org/x/sys/unix"
)

// residentPages counts the pages of b that mincore reports in memory.
func residentPages(t *testing.T, b []byte) int {
	t.Helper()
	ps := uintptr(os.Getpagesize())
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := addr &^ (ps - 1)
	n := (addr - start + uintptr(len(b)) + ps - 1) / ps
	vec := make([]byte, n)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, start, n*ps, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	c := 0
	for _, v := range vec {
		c += int(v & 1)
	}
	return c
}

// TestPrepareTablesPopulates: a table too small a share of the lookups to
// copy is read in whole by PrepareTables, from a file none of which was
// in the page cache.
func TestPrepareTablesPopulates(t *testing.T) {
	rows := []int{50000, 3000} // 1.6 MB and 96 KB of fp32
	ts := dlrmTensors([]int{4, 8}, rows, nil, 8+3, []int{6, 1})
	path := writeTestModel(t, ts)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evict := func(b []byte) {
		// Unmap the process's pages first: the page cache keeps mapped ones.
		if err := releasePages(b); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Skipf("fadvise: %v", err)
		}
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tb := m.Net.Tables[0].Weight
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(tb))), 4*len(tb))
	if !isMapped(b) {
		t.Fatal("the table is not memory-mapped")
	}
	evict(b)
	total := (len(b) + os.Getpagesize() - 1) / os.Getpagesize()
	if got := residentPages(t, b); got > total/2 {
		t.Skipf("the page cache kept %d of %d pages after FADV_DONTNEED; cannot observe populating", got, total)
	}
	m.PrepareTables(1) // far too few lookups for a copy
	if !isMapped(kernels.F32Bytes(m.Net.Tables[0].Weight)) {
		t.Fatal("the table moved off the file mapping")
	}
	if got := residentPages(t, b); got < total {
		t.Errorf("%d of the table's %d pages in memory after PrepareTables, want all", got, total)
	}
}

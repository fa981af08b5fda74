package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// pqWithFooter wraps footer bytes as a Parquet file: PAR1, footer, its
// length, PAR1.
func pqWithFooter(footer []byte) []byte {
	var b bytes.Buffer
	b.WriteString("PAR1")
	b.Write(footer)
	binary.Write(&b, binary.LittleEndian, uint32(len(footer)))
	b.WriteString("PAR1")
	return b.Bytes()
}

// editPageHeader rewrites the first page header of column's chunk in the
// first row group of file (a valid Parquet file) through edit, and the
// footer's offsets and that chunk's size to match the new header's length.
func editPageHeader(t testing.TB, file []byte, column string, edit func(*format.PageHeader)) []byte {
	t.Helper()
	n := int64(binary.LittleEndian.Uint32(file[len(file)-8:]))
	footerAt := int64(len(file)) - 8 - n
	var meta format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), file[footerAt:footerAt+n], &meta); err != nil {
		t.Fatal(err)
	}
	ci := slices.IndexFunc(meta.RowGroups[0].Columns, func(c format.ColumnChunk) bool { return slices.Equal(c.MetaData.PathInSchema, []string{column}) })
	if ci < 0 {
		t.Fatalf("no column %s", column)
	}
	md := meta.RowGroups[0].Columns[ci].MetaData
	off := md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < off {
		off = md.DictionaryPageOffset
	}
	w := thriftWalk{b: file[off:]}
	if err := w.structure(0, nil); err != nil {
		t.Fatal(err)
	}
	var h format.PageHeader
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), file[off:off+int64(w.pos)], &h); err != nil {
		t.Fatal(err)
	}
	edit(&h)
	nh, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil {
		t.Fatal(err)
	}
	delta := int64(len(nh) - w.pos)
	for g := range meta.RowGroups {
		for c := range meta.RowGroups[g].Columns {
			m := &meta.RowGroups[g].Columns[c].MetaData
			if m.DataPageOffset > off {
				m.DataPageOffset += delta
			}
			if m.DictionaryPageOffset > off {
				m.DictionaryPageOffset += delta
			}
			if g == 0 && c == ci {
				m.TotalCompressedSize += delta
			}
		}
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &meta)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Concat(file[:off], nh, file[off+int64(w.pos):footerAt], footer, binary.LittleEndian.AppendUint32(nil, uint32(len(footer))), []byte("PAR1"))
}

// pqErr opens a Parquet file and reads it to the end: the first error.
func pqErr(t testing.TB, path string, opts Options) error {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = readPq(t, r)
	return err
}

// TestParquetBudgets: metadata claiming more than the limits is refused
// before parquet-go acts on it, as a FormatError or LimitError naming the
// file, in little memory. Each of these crashed or allocated gigabytes
// before the checks (the first with a fatal out-of-memory: 2^31 row
// groups of 88 bytes claimed in a 12-byte footer).
func TestParquetBudgets(t *testing.T) {
	list := func(field byte, elem byte, n uint64, after []byte) []byte {
		f := []byte{field<<4 | tcList, 0xF0 | elem}
		return append(binary.AppendUvarint(f, n), after...)
	}
	good := smallPq(t, 12, 4)
	opts := Options{NumDense: 2, TableRows: []int64{7, 5}}
	// Rewritten through editPageHeader unchanged, the file reads: the
	// errors below come from the edits.
	if got, err := readPq(t, mustOpen(t, writePq(t, editPageHeader(t, good, "label", func(*format.PageHeader) {})), opts)); err != nil || len(got) != 12 {
		t.Fatalf("the unedited file: %d rows, %v", len(got), err)
	}
	for _, c := range []struct {
		name  string
		data  []byte
		limit bool // a LimitError, else a FormatError
		want  string
	}{
		{"2^31 row groups claimed", pqWithFooter(list(4, tcStruct, 1<<31-1, nil)), false, "a list of 2147483647 at byte 7, but only 0 bytes follow"},
		{"2^31 schema strings claimed", pqWithFooter(list(2, tcBinary, 1<<31-1, nil)), false, "but only 0 bytes follow"},
		{"a 2 GiB string claimed", pqWithFooter(append([]byte{1<<4 | tcBinary}, binary.AppendUvarint(nil, 1<<31)...)), false, "a string of 2147483648"},
		{"1M empty row groups", pqWithFooter(list(4, tcStruct, 1<<20, make([]byte, 1<<20+1))), true, "the structures its footer decodes to exceed the limit of 256 MiB"},
		{"structs nested 100 deep", pqWithFooter(slices.Repeat([]byte{1<<4 | tcStruct}, 100)), false, "nested over 32 deep"},
		{"lists nested 100 deep", pqWithFooter(append([]byte{1<<4 | tcList}, slices.Repeat([]byte{1<<4 | tcList}, 100)...)), false, "nested over 32 deep"},
		{"page of 1 GiB compressed", editPageHeader(t, good, "label", func(h *format.PageHeader) { h.CompressedPageSize = 1 << 30 }), false, `row group 0, column "label": the page at byte`},
		{"page of 1 GiB decoded", editPageHeader(t, good, "label", func(h *format.PageHeader) { h.UncompressedPageSize = 1 << 30 }), true, "1073741824 decoded bytes exceed the limit of 128 MiB"},
		{"page of 2^30 values", editPageHeader(t, good, "label", func(h *format.PageHeader) {
			h.DataPageHeader.V.NumValues = 1 << 30
			h.DataPageHeaderV2.V.NumValues = 1 << 30
			h.DictionaryPageHeader.V.NumValues = 1 << 30
		}), true, "1073741824 values exceed the limit of 16777216 values"},
		{"negative page size", editPageHeader(t, good, "label", func(h *format.PageHeader) { h.CompressedPageSize = -5 }), false, "claims -5 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hostile.parquet")
			os.WriteFile(p, c.data, 0o644)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			// The commands' look at the dense columns' types reads the
			// footer too (it once went to parquet-go unchecked).
			if ParquetDenseIsFloat(p, "", Columns{}) {
				t.Fatal("ParquetDenseIsFloat of a hostile file")
			}
			err := pqErr(t, p, opts)
			runtime.ReadMemStats(&after)
			wantErr(t, err, p, c.want)
			var le *LimitError
			var fe *FormatError
			if c.limit && !errors.As(err, &le) || !c.limit && !errors.As(err, &fe) {
				t.Fatalf("%T %v: want a LimitError %v", err, err, c.limit)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
				t.Fatalf("allocated %d MB refusing it", d>>20)
			}
		})
	}
	// A footer claiming more than MaxParquetFooterBytes (the file holds
	// them, as zeros).
	big := make([]byte, MaxParquetFooterBytes+20)
	copy(big, "PAR1")
	binary.LittleEndian.PutUint32(big[len(big)-8:], MaxParquetFooterBytes+1)
	copy(big[len(big)-4:], "PAR1")
	p := writePq(t, big)
	var le *LimitError
	if err := pqErr(t, p, opts); !errors.As(err, &le) {
		t.Fatalf("a 16 MiB footer: %v", err)
	}
	// Wrong magic at the end, an encrypted footer.
	wantErr(t, pqErr(t, writePq(t, append(slices.Clone(good[:len(good)-4]), "PAR2"...)), opts), "ends in \"PAR2\"")
	var ue *UnsupportedError
	if err := pqErr(t, writePq(t, append(slices.Clone(good[:len(good)-4]), "PARE"...)), opts); !errors.As(err, &ue) {
		t.Fatalf("encrypted footer: %v", err)
	}
	// Compressed files within the limits read as the uncompressed one.
	for _, codec := range []parquet.WriterOption{parquet.Compression(&parquet.Snappy), parquet.Compression(&parquet.Gzip), parquet.Compression(&parquet.Zstd), parquet.Compression(&parquet.Lz4Raw), parquet.Compression(&parquet.Brotli)} {
		rows := make([]map[string]any, 30)
		for i := range rows {
			rows[i], _ = smallPqRow(i)
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, parquet.NewSchema("clicklog", smallPqSchema), parquet.MaxRowsPerRowGroup(7), parquet.PageBufferSize(64), codec)
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		want, err := readPq(t, mustOpen(t, writePq(t, smallPq(t, 30, 7)), opts))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readPq(t, mustOpen(t, writePq(t, buf.Bytes()), opts))
		if err != nil || len(got) != 30 || !slices.EqualFunc(got, want, func(a, b pqExample) bool { return a.row == b.row && a.label == b.label }) {
			t.Fatalf("%v: %d rows, %v", codec, len(got), err)
		}
	}
}

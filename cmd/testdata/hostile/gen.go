//go:build ignore

// Command gen writes the small hostile inputs that cmd's TestHostileCorpus
// runs rq on (issue 12): tiny DLRM models with a non-finite weight, an
// ambiguous interaction, a click log whose every row is malformed, an npz
// whose stored member fails its CRC-32, malformed and hostile Parquet click
// logs (pq_*.parquet: a truncated footer, a wrong magic, a column of the
// wrong type, ids beyond their table or negative, a null label, a footer
// claiming 2^31 row groups, a page claiming 1 GiB), and the valid tiny
// model and data the path and JSON cases start from. Every byte
// comes from constants, so a run writes the same files:
//
//	cd cmd/testdata/hostile && go run gen.go
//
// The large cases (pickle and header bombs) are written by
// modelio/testdata/hostile/gen.go; cases that need the file system (FIFOs,
// links) or rq's own outputs (ranges, states) are made by the test itself.
package main

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/rqtools/rq/modelio"
)

func main() {
	// A facebookresearch/dlrm state dict: 13 dense -> 4, 26 tables of 8
	// rows x 4, dot interaction (4 + 27*26/2 = 355 wide), 355 -> 2 -> 1.
	tiny := dlrm(13, 4, 26, 8, false)
	write("tiny.safetensors", tiny, nil)
	// The same with a NaN in top_l.0.weight at flat index 357 (row 1, col 2).
	write("nan_weight.safetensors", tiny, map[string]int{"top_l.0.weight": 357})
	// An Inf in table 5, row 3, col 1: eval and quantize meet it.
	write("inf_table.safetensors", tiny, map[string]int{"emb_l.5.weight": 3*4 + 1})
	// 1e6 in table 2, row 4, col 0: finite, but beyond what fp16 holds.
	write("big_table.safetensors", tiny, map[string]int{"emb_l.2.weight": 4 * 4})
	// 3 tables and a 2-wide bottom: dot (2 + 4*3/2 = 8) and cat (4*2 = 8)
	// give the same top width.
	write("ambiguous.safetensors", dlrm(13, 2, 3, 8, false), nil)

	// 20 rows of tiny-model data, every id within 8 rows, table 5 id 3 in
	// row 7 (so the Inf is met).
	var tsv strings.Builder
	for r := 0; r < 20; r++ {
		fmt.Fprintf(&tsv, "%d", r%2)
		for i := 0; i < 13; i++ {
			fmt.Fprintf(&tsv, "\t%d", (r*7+i)%11)
		}
		for t := 0; t < 26; t++ {
			id := (r*3 + t) % 8
			if t == 5 {
				id = 0
				if r == 7 {
					id = 3
				}
			}
			fmt.Fprintf(&tsv, "\t%x", id)
		}
		tsv.WriteString("\n")
	}
	writeFile("tiny.tsv", []byte(tsv.String()))

	// The same rows as an npz of stored (uncompressed) members, as
	// np.savez writes, and a copy with one byte of X_cat's data flipped
	// after its CRC-32 was recorded.
	dense := make([]int32, 0, 20*13)
	cat := make([]int32, 0, 20*26)
	labels := make([]float32, 0, 20)
	for _, line := range strings.Split(strings.TrimSpace(tsv.String()), "\n") {
		f := strings.Split(line, "\t")
		labels = append(labels, float32(atoi(f[0], 10)))
		for _, x := range f[1:14] {
			dense = append(dense, int32(atoi(x, 10)))
		}
		for _, x := range f[14:] {
			cat = append(cat, int32(atoi(x, 16)))
		}
	}
	npz := storedNpz([]member{
		{"X_int.npy", npy("<i4", []int{20, 13}, dense)},
		{"X_cat.npy", npy("<i4", []int{20, 26}, cat)},
		{"y.npy", npy("<f4", []int{20}, labels)},
	}, "")
	writeFile("tiny.npz", npz)
	writeFile("badcrc.npz", storedNpz([]member{
		{"X_int.npy", npy("<i4", []int{20, 13}, dense)},
		{"X_cat.npy", npy("<i4", []int{20, 26}, cat)},
		{"y.npy", npy("<f4", []int{20}, labels)},
	}, "X_cat.npy"))

	// 100,000 empty lines, gzipped: every row malformed.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(bytes.Repeat([]byte("\n"), 100000))
	zw.Close()
	writeFile("allbad.tsv.gz", gz.Bytes())

	parquetCases(dense, cat, labels)
}

// parquetCases writes the 20 rows as Parquet with Criteo's column names
// (label int32, I1..I13 int64, C1..C26 int64, C5 a list<int64> bag), and
// the hostile variants.
func parquetCases(dense, cat []int32, labels []float32) {
	type change func(g parquet.Group, row map[string]any, i int)
	write := func(name string, ch change) []byte {
		g := parquet.Group{"label": parquet.Int(32)}
		for j := 1; j <= 13; j++ {
			g["I"+strconv.Itoa(j)] = parquet.Int(64)
		}
		for k := 1; k <= 26; k++ {
			g["C"+strconv.Itoa(k)] = parquet.Int(64)
		}
		g["C5"] = parquet.List(parquet.Int(64))
		var rows []map[string]any
		for i := range 20 {
			r := map[string]any{"label": int32(labels[i])}
			for j := range 13 {
				r["I"+strconv.Itoa(j+1)] = int64(dense[i*13+j])
			}
			for k := range 26 {
				r["C"+strconv.Itoa(k+1)] = int64(cat[i*26+k])
			}
			r["C5"] = []int64{int64(cat[i*26+4]), int64(i % 8)}[:1+i%2]
			if ch != nil {
				ch(g, r, i)
			}
			rows = append(rows, r)
		}
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, parquet.NewSchema("clicklog", g), parquet.MaxRowsPerRowGroup(8), parquet.CreatedBy("rq", "hostile-gen", ""))
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				log.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
		if name != "" {
			writeFile(name, buf.Bytes())
		}
		return buf.Bytes()
	}
	good := write("tiny.parquet", nil)
	// The footer cut off: the file ends 40 bytes into its footer.
	n := int(binary.LittleEndian.Uint32(good[len(good)-8:]))
	writeFile("pq_truncated_footer.parquet", good[:len(good)-8-n+40])
	// The leading magic of another format.
	writeFile("pq_bad_magic.parquet", append([]byte("PAR0"), good[4:]...))
	write("pq_string_ids.parquet", func(g parquet.Group, r map[string]any, i int) { g["C3"], r["C3"] = parquet.String(), "68fd1e64" })
	write("pq_id_beyond_table.parquet", func(g parquet.Group, r map[string]any, i int) {
		if i == 12 {
			r["C5"] = []int64{1, 9} // table 4 has 8 rows
		}
	})
	write("pq_negative_id.parquet", func(g parquet.Group, r map[string]any, i int) {
		if i == 2 {
			r["C2"] = int64(-1)
		}
	})
	write("pq_null_label.parquet", func(g parquet.Group, r map[string]any, i int) {
		g["label"] = parquet.Optional(parquet.Int(32))
		if i == 6 {
			r["label"] = nil
		}
	})
	// A 12-byte footer whose list of row groups claims 2^31-1 entries
	// (parquet-go would allocate 1.2 TB for it).
	footer := binary.AppendUvarint([]byte{4<<4 | 9, 0xFC}, 1<<31-1)
	var huge bytes.Buffer
	huge.WriteString("PAR1")
	huge.Write(footer)
	binary.Write(&huge, binary.LittleEndian, uint32(len(footer)))
	huge.WriteString("PAR1")
	writeFile("pq_huge_footer_list.parquet", huge.Bytes())
	writeFile("pq_huge_page.parquet", editFirstPage(good, "label", func(h *format.PageHeader) { h.UncompressedPageSize = 1 << 30 }))
}

// editFirstPage rewrites the first page header of column's chunk in the
// first row group through edit, and the footer's offsets and that chunk's
// size to match the new header's length.
func editFirstPage(file []byte, column string, edit func(*format.PageHeader)) []byte {
	proto := new(thrift.CompactProtocol)
	n := int64(binary.LittleEndian.Uint32(file[len(file)-8:]))
	footerAt := int64(len(file)) - 8 - n
	var meta format.FileMetaData
	if err := thrift.Unmarshal(proto, file[footerAt:footerAt+n], &meta); err != nil {
		log.Fatal(err)
	}
	ci := slices.IndexFunc(meta.RowGroups[0].Columns, func(c format.ColumnChunk) bool { return slices.Equal(c.MetaData.PathInSchema, []string{column}) })
	md := meta.RowGroups[0].Columns[ci].MetaData
	off := md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < off {
		off = md.DictionaryPageOffset
	}
	pr := proto.NewReaderFromBytes(file[off:])
	var h format.PageHeader
	if err := thrift.NewDecoder(pr).Decode(&h); err != nil {
		log.Fatal(err)
	}
	old := int64(pr.BytesRead())
	edit(&h)
	nh, err := thrift.Marshal(proto, &h)
	if err != nil {
		log.Fatal(err)
	}
	delta := int64(len(nh)) - old
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
	footer, err := thrift.Marshal(proto, &meta)
	if err != nil {
		log.Fatal(err)
	}
	return slices.Concat(file[:off], nh, file[off+old:footerAt], footer, binary.LittleEndian.AppendUint32(nil, uint32(len(footer))), []byte("PAR1"))
}

// dlrm builds the tensors of a small DLRM with deterministic weights.
func dlrm(dense, d, tables, rows int, _ bool) []modelio.TensorSpec {
	v := uint32(1)
	vals := func(n int, scale float32) []float32 {
		out := make([]float32, n)
		for i := range out {
			v = v*1664525 + 1013904223
			out[i] = scale * (float32(v>>8)/float32(1<<24)*2 - 1)
		}
		return out
	}
	var specs []modelio.TensorSpec
	add := func(name string, shape []int, scale float32) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		specs = append(specs, modelio.TensorSpec{Name: name, DType: modelio.F32, Shape: shape, Write: floats(vals(n, scale))})
	}
	add("bot_l.0.weight", []int{d, dense}, 0.3)
	add("bot_l.0.bias", []int{d}, 0.1)
	for t := 0; t < tables; t++ {
		add(fmt.Sprintf("emb_l.%d.weight", t), []int{rows, d}, 0.5)
	}
	in := d + (tables+1)*tables/2
	add("top_l.0.weight", []int{2, in}, 0.2)
	add("top_l.0.bias", []int{2}, 0.1)
	add("top_l.2.weight", []int{1, 2}, 0.5)
	add("top_l.2.bias", []int{1}, 0.1)
	return specs
}

func floats(v []float32) func(io.Writer) error {
	return func(w io.Writer) error { return binary.Write(w, binary.LittleEndian, v) }
}

// write writes specs to name with one value per poisoned tensor set to NaN
// (weights), +Inf (tables) or 1e6 (big_table).
func write(name string, specs []modelio.TensorSpec, poison map[string]int) {
	out := make([]modelio.TensorSpec, len(specs))
	copy(out, specs)
	for i, s := range out {
		at, ok := poison[s.Name]
		if !ok {
			continue
		}
		var buf bytes.Buffer
		if err := s.Write(&buf); err != nil {
			log.Fatal(err)
		}
		v := make([]float32, buf.Len()/4)
		binary.Read(&buf, binary.LittleEndian, v)
		v[at] = float32(math.NaN())
		switch {
		case name == "big_table.safetensors":
			v[at] = 1e6
		case strings.HasPrefix(s.Name, "emb_l."):
			v[at] = float32(math.Inf(1))
		}
		out[i].Write = floats(v)
	}
	if err := modelio.WriteSafetensors(name, out, nil); err != nil {
		log.Fatal(err)
	}
}

func atoi(s string, base int) int64 {
	v, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// npy encodes an array as a version 1.0 .npy file.
func npy(descr string, shape []int, data any) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, sh)
	for (10+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	binary.Write(&b, binary.LittleEndian, data)
	return b.Bytes()
}

type member struct {
	name string
	data []byte
}

// storedNpz zips the members uncompressed (zip.Store), with fixed times;
// the member named corrupt gets one data byte flipped after its CRC-32.
func storedNpz(ms []member, corrupt string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, m := range ms {
		data := m.data
		h := &zip.FileHeader{Name: m.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(data), UncompressedSize64: uint64(len(data)), CompressedSize64: uint64(len(data))}
		h.Modified = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
		if m.name == corrupt {
			data = append([]byte(nil), data...)
			data[len(data)-7] ^= 0x01
		}
		w, err := zw.CreateRaw(h)
		if err != nil {
			log.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(name string, b []byte) {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

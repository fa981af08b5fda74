//go:build ignore

// Command gen writes the hostile model files of issue 12 that modelio's
// tests and fuzz targets use as seeds. Each seed is small (under 64 KB)
// but stands for an input that used to cost gigabytes or tens of seconds:
//
//	cd modelio/testdata/hostile && go run gen.go
//
// With -big DIR it also writes the full-size cases, for measuring rq by
// hand (go run . inspect DIR/FILE under /usr/bin/time -v):
//
//	go run gen.go -big /tmp/hostile
//
// Everything is written by this program from constants: the output is
// the same bytes on every run.
package main

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"log"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	big := flag.String("big", "", "also write the full-size cases to this directory")
	flag.Parse()
	seeds := map[string][]byte{
		// 3 M empty dicts (EMPTY_DICT opcodes) deflated to ~3 KB: more
		// objects than the unpickler builds.
		"dicts.pt": manyDicts(3_000_000, 0),
		// data.pkl claims to inflate to 1 GiB: refused before inflating.
		"claims_1gib.pt": manyDicts(1<<20, 1<<30),
		// A stride-0 fp16 view of 16 values as (2^25, 16): 1 GiB if copied.
		"stride0.pt": stride0(),
		// 5000 __metadata__ entries: more than a safetensors header may hold.
		"metadata_keys.safetensors": metadataKeys(5000, 1),
	}
	for name, b := range seeds {
		if len(b) >= 64<<10 {
			log.Fatalf("%s: %d bytes, seeds must stay under 64 KB", name, len(b))
		}
		write(filepath.Join(".", name), b)
	}
	if *big == "" {
		return
	}
	if err := os.MkdirAll(*big, 0o755); err != nil {
		log.Fatal(err)
	}
	write(filepath.Join(*big, "bomb_1gib.pt"), manyDicts(1<<30-3, 0)) // data.pkl of exactly 1 GiB
	write(filepath.Join(*big, "dicts_20m.pt"), manyDicts(20_000_000, 0))
	write(filepath.Join(*big, "stride0.pt"), stride0())
	write(filepath.Join(*big, "metadata_100mb.safetensors"), metadataKeys(7_100_000, 7))
	write(filepath.Join(*big, "tensors_100mb.safetensors"), manyTensors(1_650_000))
	write(filepath.Join(*big, "encode_amp.pt"), encodeAmp())
	write(filepath.Join(*big, "shared_meta.pt"), sharedMeta())
	write(filepath.Join(*big, "dict_entries.pt"), pickleZip(deflateSegments([]seg{
		{data: []byte("\x80\x02"), times: 1}, {data: bytes.Repeat([]byte("}NNs"), 1<<18), times: 63}, {data: []byte("."), times: 1}})))
}

// pickleZip is a zip holding only a deflated data.pkl.
func pickleZip(raw []byte, crc uint32, size uint64) []byte {
	return zipFile([]zipEntry{{name: "archive/data.pkl", raw: raw, crc: crc, size: size, method: zip.Deflate}})
}

// encodeAmp memoizes a 32 MiB str and calls _codecs.encode on it 1000
// times: each call makes 32 MiB of bytes from 8 bytes of pickle.
func encodeAmp() []byte {
	head := []byte("\x80\x02c_codecs\nencode\nq\x00X")
	head = binary.LittleEndian.AppendUint32(head, 32<<20)
	return pickleZip(deflateSegments([]seg{
		{data: head, times: 1},
		{data: bytes.Repeat([]byte("a"), 1<<20), times: 32},
		{data: []byte("q\x01"), times: 1},
		{data: []byte("h\x00h\x01\x85R0"), times: 1000},
		{data: []byte("N."), times: 1},
	}))
}

// sharedMeta is a checkpoint with one tensor and 50,000 other entries that
// all name one memoized 1 MiB bytes object.
func sharedMeta() []byte {
	p := []byte("\x80\x02}(")
	p = pklStr(p, "w")
	p = append(p, "ctorch._utils\n_rebuild_tensor_v2\n(("...)
	p = pklStr(p, "storage")
	p = append(p, "ctorch\nFloatStorage\n"...)
	p = pklStr(p, "0")
	p = pklStr(p, "cpu")
	p = pklInt(p, 1)
	p = append(p, "tQ"...)
	p = pklInt(p, 0)
	p = append(p, '(')
	p = pklInt(p, 1)
	p = append(p, "t("...)
	p = pklInt(p, 1)
	p = append(p, "t\x89ccollections\nOrderedDict\n)RtR"...)
	p = pklStr(p, "blob")
	p = append(p, 'B')
	p = binary.LittleEndian.AppendUint32(p, 1<<20)
	p = append(p, bytes.Repeat([]byte("x"), 1<<20)...)
	p = append(p, "r\xe8\x03\x00\x00"...)
	for i := range 50_000 {
		p = pklStr(p, fmt.Sprintf("m%d", i))
		p = append(p, "j\xe8\x03\x00\x00"...)
	}
	p = append(p, "u."...)
	data := make([]byte, 4)
	return zipFile([]zipEntry{
		{name: "archive/data.pkl", raw: p, crc: crc32.ChecksumIEEE(p), size: uint64(len(p)), method: zip.Store},
		{name: "archive/data/0", raw: data, crc: crc32.ChecksumIEEE(data), size: uint64(len(data)), method: zip.Store},
	})
}

func write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d bytes\n", path, len(b))
}

// manyDicts is a torch.save-shaped zip whose deflated data.pkl is a protocol
// 2 pickle of n EMPTY_DICT opcodes. claim, when not 0, replaces the entry's
// declared uncompressed size.
func manyDicts(n int, claim uint64) []byte {
	const chunk = 1 << 20
	segs := []seg{{data: []byte("\x80\x02"), times: 1}}
	if n >= chunk {
		segs = append(segs, seg{data: bytes.Repeat([]byte("}"), chunk), times: n / chunk})
	}
	segs = append(segs, seg{data: append(bytes.Repeat([]byte("}"), n%chunk), '.'), times: 1})
	raw, crc, size := deflateSegments(segs)
	if claim != 0 {
		size = claim
	}
	return zipFile([]zipEntry{{name: "archive/data.pkl", raw: raw, crc: crc, size: size, method: zip.Deflate}})
}

// seg is data repeated times.
type seg struct {
	data  []byte
	times int
}

// deflateSegments deflates the concatenation of the segments without
// compressing all of it: each segment is compressed once by a fresh
// compressor and flushed to a byte boundary, and its blocks (which refer
// only to bytes within the segment) are repeated. A final empty stored
// block ends the stream. It returns the stream, the CRC-32 and the size of
// the inflated data.
func deflateSegments(segs []seg) (raw []byte, crc uint32, size uint64) {
	var out bytes.Buffer
	for _, s := range segs {
		var b bytes.Buffer
		w, err := flate.NewWriter(&b, flate.BestCompression)
		if err != nil {
			log.Fatal(err)
		}
		w.Write(s.data)
		w.Flush() // non-final blocks, then an empty stored block: byte-aligned
		for range s.times {
			out.Write(b.Bytes())
			crc = crc32.Update(crc, crc32.IEEETable, s.data)
			size += uint64(len(s.data))
		}
	}
	out.Write([]byte{0x01, 0x00, 0x00, 0xff, 0xff}) // final empty stored block
	return out.Bytes(), crc, size
}

type zipEntry struct {
	name   string
	raw    []byte // stored bytes, or the deflate stream
	crc    uint32
	size   uint64 // uncompressed
	method uint16
}

func zipFile(entries []zipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateRaw(&zip.FileHeader{
			Name: e.name, Method: e.method, CRC32: e.crc,
			CompressedSize64: uint64(len(e.raw)), UncompressedSize64: e.size,
		})
		if err != nil {
			log.Fatal(err)
		}
		w.Write(e.raw)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// stride0 is a checkpoint whose state dict holds one fp16 tensor: a view of
// a 16-element storage as shape (2^25, 16) with strides (0, 1), the way
// torch.save writes x.expand(2**25, 16).
func stride0() []byte {
	p := []byte("\x80\x02}(")
	p = pklStr(p, "emb_l.0.weight")
	p = append(p, "ctorch._utils\n_rebuild_tensor_v2\n(("...)
	p = pklStr(p, "storage")
	p = append(p, "ctorch\nHalfStorage\n"...)
	p = pklStr(p, "0")
	p = pklStr(p, "cpu")
	p = pklInt(p, 16)
	p = append(p, "tQ"...)
	p = pklInt(p, 0)
	p = append(p, '(')
	p = pklInt(p, 1<<25)
	p = pklInt(p, 16)
	p = append(p, "t("...)
	p = pklInt(p, 0)
	p = pklInt(p, 1)
	p = append(p, "t\x89ccollections\nOrderedDict\n)RtRu."...)
	data := make([]byte, 32)
	for i := range 16 {
		binary.LittleEndian.PutUint16(data[2*i:], 0x3c00) // 1.0
	}
	return zipFile([]zipEntry{
		{name: "archive/data.pkl", raw: p, crc: crc32.ChecksumIEEE(p), size: uint64(len(p)), method: zip.Store},
		{name: "archive/data/0", raw: data, crc: crc32.ChecksumIEEE(data), size: uint64(len(data)), method: zip.Store},
	})
}

func pklStr(b []byte, s string) []byte {
	b = append(b, 'X')
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func pklInt(b []byte, v int64) []byte {
	b = append(b, 0x8a, 8)
	return binary.LittleEndian.AppendUint64(b, uint64(v))
}

// metadataKeys is a safetensors file with no tensors whose __metadata__ has
// n entries "kN": "", N zero-padded to width digits.
func metadataKeys(n, width int) []byte {
	var h strings.Builder
	h.WriteString(`{"__metadata__":{`)
	for i := range n {
		if i > 0 {
			h.WriteByte(',')
		}
		fmt.Fprintf(&h, `"k%0*d":""`, width, i)
	}
	h.WriteString("}}")
	return safetensors(h.String())
}

// manyTensors is a safetensors file with n empty F32 tensors.
func manyTensors(n int) []byte {
	var h strings.Builder
	h.WriteString("{")
	for i := range n {
		if i > 0 {
			h.WriteByte(',')
		}
		fmt.Fprintf(&h, `"t%07d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, i)
	}
	h.WriteString("}")
	return safetensors(h.String())
}

func safetensors(header string) []byte {
	for (8+len(header))%8 != 0 {
		header += " "
	}
	if len(header) > 100_000_000 {
		log.Fatalf("header of %d bytes: over the reference implementation's limit", len(header))
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(b, header...)
}

//go:build ignore

// Command gen_parquet writes the small Parquet files FuzzParquet and
// TestParquetMutations start from: one per compression codec rq reads,
// with Criteo's columns (label, I1, I2, C1 as a list<int64> bag, C2 an
// int32), two row groups and small pages. Every byte comes from constants:
//
//	cd dataset/testdata && go run gen_parquet.go
package main

import (
	"bytes"
	"log"
	"os"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

func main() {
	schema := parquet.NewSchema("clicklog", parquet.Group{
		"label": parquet.Int(32),
		"I1":    parquet.Int(64),
		"I2":    parquet.Optional(parquet.Leaf(parquet.DoubleType)),
		"C1":    parquet.List(parquet.Int(64)),
		"C2":    parquet.Int(32),
	})
	for name, codec := range map[string]compress.Codec{
		"none": &parquet.Uncompressed, "snappy": &parquet.Snappy, "gzip": &parquet.Gzip, "zstd": &parquet.Zstd, "lz4raw": &parquet.Lz4Raw,
	} {
		var buf bytes.Buffer
		w := parquet.NewWriter(&buf, schema, parquet.MaxRowsPerRowGroup(6), parquet.PageBufferSize(64), parquet.Compression(codec),
			parquet.CreatedBy("rq", "gen_parquet", ""))
		for i := range 11 {
			r := map[string]any{"label": int32(i % 2), "I1": int64(i * 3), "I2": float64(i) / 8, "C1": []int64{int64(i % 7), int64((i + 2) % 7)}[:i%3], "C2": int32(i % 5)}
			if i%4 == 1 {
				r["I2"] = nil
			}
			if err := w.Write(r); err != nil {
				log.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile("small_"+name+".parquet", buf.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

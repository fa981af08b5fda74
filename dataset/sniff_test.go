package dataset

import (
	"bytes"
	"testing"
)

// TestSniff: a format's magic decides; without one, a .npz or .parquet
// name does, also when the damaged content happens to start with gzip's
// two bytes; everything else (gzip included) is TSV.
func TestSniff(t *testing.T) {
	gz := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}
	cases := []struct {
		name    string
		content []byte
		want    string
	}{
		{"a.npz", []byte("PK\x03\x04rest"), "npz"},
		{"a.bin", []byte("PK\x05\x06"), "npz"},
		{"a.npy", []byte("\x93NUMPYxx"), "npy"},
		{"a.data", []byte("PAR1xxxx"), "parquet"},
		{"a.npz", []byte("PAR1xxxx"), "parquet"},
		{"day.tsv.gz", gz, "tsv"},
		{"a.tsv", []byte("1\t2\t3\n"), "tsv"},
		{"x.parquet", gz, "parquet"},
		{"x.PARQUET", []byte("junk"), "parquet"},
		{"x.npz", gz, "npz"},
		{"x.npz", nil, "npz"},
		{"x", nil, "tsv"},
	}
	for _, c := range cases {
		if got := sniff(c.name, bytes.NewReader(c.content)); got != c.want {
			t.Errorf("sniff(%q, %q) = %s, want %s", c.name, c.content, got, c.want)
		}
	}
}

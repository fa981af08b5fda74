// Package dataset streams click logs into model.Batches: the DLRM reference's
// preprocessed npz, raw Criteo TSV, MLPerf dlrm-v2's multi-hot layout
// (mlperf.go: dense and labels .npy, one int32 [N, h_k] bag array per table
// in an npz) and Parquet (parquet.go: columns matched by name, bags as
// list<int64> of any length). Batches is the loop every command reads them
// with.
//
// # Formats
//
// npz (numpy savez/savez_compressed, as dlrm_data_pytorch.py's preprocessing
// writes it) is a zip of .npy arrays:
//
//   - X_int [N, D]: dense features, raw counts (any integer or float dtype).
//   - X_cat [N, T]: one embedding index per table (any integer dtype, or
//     float with integral values >= 0: the reference writes float64, in
//     Fortran order).
//   - y [N] (or [N, 1]): labels, exactly 0 or 1 (integer, float or bool).
//   - counts [T], optional: the table sizes, exposed by CountsReader.
//
// .npy versions 1.0, 2.0 and 3.0 are read; dtypes are bool, int8..int64,
// uint8..uint64, float32 and float64, little-endian (single-byte types may
// carry any byte-order mark). Big-endian, complex, string, structured and
// float16 arrays are refused with an UnsupportedError. Entries may be stored or
// deflated. C-order arrays stream through the (inflating) entry reader in
// batch-sized chunks; rows before the selection are inflated and discarded,
// or, for stored entries, skipped by offset. A Fortran-order (column-major)
// array needs bytes from every column for each row, so its selected rows are
// inflated once at Open into memory (up to 256 MiB) or, beyond that, into a
// temporary file removed by Close; stored ones are read in place with ReadAt.
//
// Criteo TSV is the Kaggle Display Advertising Challenge layout, one example
// per line: label, I1..I13 (decimal integers), C1..C26 (hex hashes), tab
// separated. Empty fields are allowed: an empty dense field is 0 and an empty
// categorical field is index 0 (the DLRM reference converts an empty string to
// 0). Lines with fewer fields are padded with empty ones; more fields than
// 1+NumDense+len(TableRows) is an error. A hash is up to 16 hex digits read as
// a uint64 and reduced modulo the table size (the reference's
// --max-ind-range convention), so TSV indices are not the npz's contiguous
// ids. LF and CRLF endings are accepted, lines are limited to MaxLineBytes,
// and a file starting with the gzip magic is decompressed transparently,
// whatever its name.
//
// Open sniffs the format from the first bytes (zip magic: npz; "PAR1":
// Parquet; gzip or anything else: TSV; a ".npz" or ".parquet" name forces
// that format) unless Options.Format says.
//
// Directories are streams of several files, read one file at a time with
// rows numbered across them (for Options.Rows, shards and Batch.Row) and
// batches running on across a file's end as in one file: a directory
// holding day_N_dense.npy files is MLPerf's layout, every day in the order
// of N (day_10 after day_9); one holding *.parquet parts (Spark's, BigQuery's
// and NVTabular's part-00000-*.parquet, ...) is Parquet, the parts in
// lexical order of their names, names starting "_" or "." skipped as Spark
// skips them. Every file's header or footer is read and checked against the
// first's when the stream is opened, so a part of another schema is found
// before any row is read. A bad row's RowError names its own file and row,
// and its Where adds its row in the stream.
//
// Parquet columns are found by name: "label", "I1".."In", "C1".."Ck", or the
// names of Options.Columns (a Columns with empty fields keeps Criteo's
// names). Columns not named are not read. Formats without column names
// refuse Options.Columns.
//
// # Conventions
//
// Rows are numbered from 0 in the file's own order, before any selection:
// Options.Rows ("15429:16715", END exclusive) and Batch.Row use that
// numbering, so the reference's test split is 15429:16715 of the npz. In a
// TSV file row r is line r+1, and errors name 1-based lines
// ("criteo-18k.tsv:17: field I5 (dense 5): \"x3\" is not an integer"); npz
// errors name rows and the array column ("data.npz: row 17 (X_cat column 3):
// index 9999 is beyond table emb_l.3 with 6873 rows"). Rows before the
// selection are not checked; a selection reaching beyond the file is an error
// (at Open for npz, on reaching the end for TSV).
//
// Each batch holds BatchSize examples (only the last is shorter); every
// example has one index per table, so Offsets[t] is 0, 1, ..., N (bags of
// one, in PyTorch's EmbeddingBag convention) and Weights is nil. Batches are
// freshly allocated and may be kept.
//
// Dense features: with Log1p (the default) a value x becomes
// log(float32(max(x, 0)) + 1), computed as the reference does in PyTorch,
// torch.log(torch.tensor(x, dtype=float32) + 1): the value is rounded to
// float32, 1 is added in float32, and the log is taken in float64 and rounded
// once. For integers below 2^24 this equals float32(math.Log1p(x)), and it
// reproduces the reference's golden dense_in bit for bit. None passes the
// float32 value through (negatives kept). Non-finite values are errors.
//
// # Bad rows
//
// A bad value (a label that is not 0 or 1, a non-numeric field, an index
// that is negative, non-integral or beyond its table, a non-finite dense
// value, an over-long line) stops the read with a *RowError under BadRows Fail
// (the default). Under Skip the row is dropped and counted in Stats, which
// keeps the first reason. Structural problems (a damaged archive, truncated
// data, mismatched shapes) always stop the read, with a *FormatError or
// *UnsupportedError naming the file and array.
//
// A zip entry's CRC is verified when its data is read to the end, which is
// always the case for Fortran-order arrays and for C-order ones when the
// selection reaches the last row; a selection ending earlier does not inflate
// the rest only to check it. Stored entries are checked alike: a
// Fortran-order one in one pass at open, a C-order one whose selection
// reaches the last row over the bytes before the selection (read once at
// open) and the rows as they are read.
//
// # Memory
//
// Sizes claimed by a file are checked before they are used: every .npy
// header against its entry's size, every entry against the file's size and
// deflate's maximum ratio, column counts against the model (or a fixed cap).
// A reader holds one batch-sized chunk per array, plus, for a deflated
// Fortran-order array, its selected rows (in memory up to 256 MiB, else on
// disk).
package dataset

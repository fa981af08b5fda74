// Package storage opens rq's inputs and creates its outputs wherever they
// live: local files, or objects behind s3://bucket/key, gs://bucket/key and
// azblob://container/key URLs (issue 16). Plain paths and file:///path URLs
// are local files.
//
// # Why gocloud.dev/blob
//
// One API over S3, GCS and Azure Blob, each driver using its cloud's own
// SDK and credential chain (environment variables, profiles, instance
// roles, workload identity), with ranged readers and writers that publish
// on Close. rq needs nothing more, and three SDKs of our own would be three
// times the code to get wrong. S3-compatible servers (MinIO, Ceph,
// versitygw) take query parameters: s3://bucket/key?endpoint=http://host:port&region=us-east-1&use_path_style=true.
//
// # Reading: ranged, never a whole download
//
// Open asks for an object's attributes only. Every read is a ranged GET:
// a read of BlockSize (1 MiB) or more fetches exactly its own bytes into
// the caller's buffer; a smaller read fetches the 1 MiB block(s) holding
// it, so the many small reads of a Parquet footer, a zip central directory
// or a safetensors header cost one request, not one each. The cache keeps
// CacheBlocks (8) blocks, least recently used out: at most 8 MiB per open
// Reader (plus one block per concurrent miss). Callers that read several
// streams interleaved in small pieces (parquet-go reads each column chunk
// through its own buffer, 4 KiB by default) should make those buffers
// BlockSize or larger (parquet.ReadBufferSize(storage.BlockSize)), so the
// reads go around the cache instead of evicting each other's blocks.
// Reader.Stats counts requests and bytes, so the tests can show that a
// 100-byte read at the end of a 64 MiB object fetches one block.
//
// A Reader reads the object Open saw: on S3 every GET carries If-Match
// with the ETag from Open, and on every backend the size and modification
// time of each ranged response are compared with Open's, so an object
// replaced mid-read gives an error rather than a file spliced from two
// versions.
//
// # Writing: complete or not at all
//
// Create returns a Writer whose Commit makes the output visible and whose
// Abort (or a failure, or a cancelled context, or a Writer never finished)
// leaves any older file or object in place:
//
//   - Local files go through internal/atomicfile: a temporary file in the
//     destination's directory (unnamed, O_TMPFILE, on Linux), fsynced and
//     renamed over the destination, and frozen on SIGINT/SIGTERM with the
//     rest of rq's outputs.
//   - S3: small objects are one PutObject sent only at Commit; larger ones
//     are a multipart upload, which S3 makes visible only when
//     CompleteMultipartUpload is sent, at Commit. Abort cancels the
//     upload's context before closing it, so the completion is never sent,
//     and the SDK aborts the multipart upload. A process killed
//     mid-upload leaves invisible parts behind: a bucket lifecycle rule
//     (AbortIncompleteMultipartUpload) removes them.
//   - GCS: a resumable upload, finalized only by its last chunk at Commit.
//   - Azure Blob: staged blocks, committed by the Put Block List at Commit.
//
// For every backend, Commit after atomicfile.Freeze (rq's first stop
// signal) fails with atomicfile.ErrFrozen and puts nothing in place, as for
// local outputs; the signal also cancels the command's context, which
// aborts uploads under way.
//
// Uploads are sent in parts of WriteBufferSize (8 MiB), WriteConcurrency
// (2) at a time: a Writer holds at most 24 MiB.
//
// # Errors
//
// Errors from objects are *Error values naming the operation and the URL;
// errors.Is(err, fs.ErrNotExist) holds for a missing object or bucket (as
// for a missing local file) and errors.Is(err, fs.ErrPermission) for
// refused credentials, whose message names the bucket and where the
// credentials come from. Local files give the os package's errors, which
// name the file.
//
// # Listing
//
// List(ctx, "s3://bucket/run/states/") returns the objects under a prefix
// (or the files of a local directory) as URLs Open accepts, sorted, for
// `rq merge` of shard states.
//
// The tests run against a real S3 server on loopback (internal/s3test,
// versitygw), never a mock.
package storage

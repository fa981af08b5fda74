// Package s3test starts a real S3-compatible server on loopback for tests:
// versitygw (github.com/versity/versitygw) with its posix backend in a
// temporary directory, one bucket, and the root account's static keys.
//
// A real server rather than a mock, because what the storage code must get
// right is exactly what a mock would assume away: ranged GETs with
// Content-Range, multipart uploads that publish only on completion, request
// signing (so wrong credentials fail as they would on S3), and connections
// that die when the server does.
//
// The versitygw binary is built once with `go install` into a cache
// directory (os.UserCacheDir()/rq-test/versitygw-<version>) and reused by
// later test runs, so a CI machine pays the build once per cache. The
// environment variable RQ_VERSITYGW names a prebuilt binary instead (for a
// machine without network access). When the binary cannot be built or the
// server cannot start, Start skips the test with the reason, or fails it
// when CI=true: in CI a missing server must not pass silently.
package s3test

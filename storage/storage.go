package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	// The drivers behind the URL schemes rq accepts; each reads its
	// credentials and endpoints from the environment as its cloud's SDK
	// does.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

// Schemes are the object-storage URL schemes rq reads and writes, besides
// file:// (which names a local file).
var Schemes = []string{"s3", "gs", "azblob"}

// IsURL reports whether path is written as a URL (scheme://...) rather than
// as a local file name: s3://, gs://, azblob:// and file:// URLs, and also
// URLs of schemes rq does not support, so that Open, Create and List can
// reject those by name instead of looking for a local file called
// "http:/host/x".
func IsURL(path string) bool {
	_, ok := scheme(path)
	return ok
}

// LocalPath returns the local file name path stands for: path itself when
// it is not a URL, the file's name for a file:// URL, and false for an
// object-storage URL (or a malformed file:// URL). Callers use it to keep
// their fast local paths (memory-mapping, for one) for local files.
func LocalPath(path string) (string, bool) {
	sch, ok := scheme(path)
	if !ok {
		return path, true
	}
	if sch != "file" {
		return "", false
	}
	p, err := filePath(path)
	return p, err == nil
}

// scheme returns the lower-cased scheme of a path of the form
// scheme://rest. A scheme is a letter followed by letters, digits, '+',
// '-' or '.' (RFC 3986), at least two characters long so that a Windows
// drive letter ("C://x") is never one.
func scheme(path string) (string, bool) {
	i := strings.Index(path, "://")
	if i < 2 {
		return "", false
	}
	for j, c := range path[:i] {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", false
		}
	}
	return strings.ToLower(path[:i]), true
}

// location is where a path leads: a local file, or an object in a bucket.
type location struct {
	local string // the local file name, when the path is local

	name      string // the path as the caller wrote it, for messages
	scheme    string
	bucket    string // the bucket (container) name
	bucketURL string // scheme://bucket?query, for blob.OpenBucket
	key       string // the object's key (or prefix), without a leading '/'
	u         *url.URL
}

func (l location) isLocal() bool { return l.bucketURL == "" }

// locate parses path into a local file name or a bucket and key.
func locate(path string) (location, error) {
	sch, ok := scheme(path)
	if !ok {
		return location{local: path, name: path}, nil
	}
	if sch == "file" {
		p, err := filePath(path)
		if err != nil {
			return location{}, err
		}
		return location{local: p, name: path}, nil
	}
	supported := false
	for _, s := range Schemes {
		supported = supported || s == sch
	}
	if !supported {
		return location{}, fmt.Errorf("%s: unsupported URL scheme %q (rq reads and writes s3://, gs://, azblob:// and file:// URLs)", path, sch)
	}
	u, err := url.Parse(path)
	if err != nil {
		return location{}, fmt.Errorf("%s: not a valid URL: %v", path, err)
	}
	if u.Host == "" {
		return location{}, fmt.Errorf("%s: no bucket in the URL (want %s://bucket/key)", path, sch)
	}
	if u.User != nil {
		return location{}, fmt.Errorf("%s: credentials do not belong in the URL (each cloud's SDK reads them from the environment)", path)
	}
	if u.Fragment != "" {
		return location{}, fmt.Errorf("%s: a URL fragment (#...) is not part of an object name", path)
	}
	b := url.URL{Scheme: sch, Host: u.Host, RawQuery: u.RawQuery}
	return location{
		name:      path,
		scheme:    sch,
		bucket:    u.Host,
		bucketURL: b.String(),
		key:       strings.TrimPrefix(u.Path, "/"),
		u:         u,
	}, nil
}

// withKey is the URL of another key in the same bucket, with the same
// query (endpoint and other driver options), as List returns them.
func (l location) withKey(key string) string {
	u := *l.u
	u.Path = "/" + key
	u.RawPath = ""
	return u.String()
}

// filePath is the local file name of a file:// URL: file:///abs/path, or
// file://localhost/abs/path.
func filePath(path string) (string, error) {
	u, err := url.Parse(path)
	if err != nil {
		return "", fmt.Errorf("%s: not a valid URL: %v", path, err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%s: a file:// URL names a file on this machine (file:///path), not on host %q", path, u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s: a file:// URL takes no query or fragment", path)
	}
	if u.Path == "" {
		return "", fmt.Errorf("%s: no file name", path)
	}
	return filepath.FromSlash(u.Path), nil
}

// Buckets are opened once per process and kept open (their Close is never
// called): opening one runs the cloud's configuration and credential chain
// (for S3 the AWS SDK's LoadDefaultConfig, which among other things parses
// AWS_CA_BUNDLE's certificates: 20 ms each time on a machine that sets it),
// and one run opens many objects of a bucket: a model and its baseline, a
// log, an MLPerf day's three files, a directory of Parquet parts, the
// states of a merge. The key is the bucket URL and the environment the
// drivers read their credentials and settings from, so a process whose
// credentials change opens the bucket again.
var buckets struct {
	sync.Mutex
	m map[string]*blob.Bucket
}

// driverEnv is the part of the environment the cloud drivers read:
// variables of AWS, Google Cloud and Azure, sorted as os.Environ gives them.
func driverEnv() string {
	var b strings.Builder
	for _, kv := range os.Environ() {
		for _, p := range [...]string{"AWS_", "GOOGLE_", "GCE_", "CLOUDSDK_", "AZURE_"} {
			if strings.HasPrefix(kv, p) {
				b.WriteString(kv)
				b.WriteByte(0)
				break
			}
		}
	}
	return b.String()
}

// openBucket opens the bucket of a URL location, naming the URL if that
// fails (an unknown query parameter, say).
func openBucket(ctx context.Context, l location) (*blob.Bucket, error) {
	key := l.bucketURL + "\x00" + driverEnv()
	buckets.Lock()
	defer buckets.Unlock()
	if b := buckets.m[key]; b != nil {
		return b, nil
	}
	b, err := blob.OpenBucket(ctx, l.bucketURL)
	if err != nil {
		return nil, fmt.Errorf("%s: opening bucket %q: %v", l.name, l.bucket, err)
	}
	if buckets.m == nil {
		buckets.m = map[string]*blob.Bucket{}
	}
	buckets.m[key] = b
	return b, nil
}

// Error is an object-storage failure, naming the URL, what was being done
// and, for refused credentials, the bucket. errors.Is(err, fs.ErrNotExist)
// holds for a missing object or bucket, as it does for a missing local
// file; errors.Is(err, fs.ErrPermission) for refused credentials.
type Error struct {
	Op     string // "open", "read", "write", "list"
	URL    string // the URL as given
	Bucket string // the bucket (container) name
	Msg    string // what went wrong, in rq's words
	Err    error  // the driver's error, if any

	kind error // fs.ErrNotExist, fs.ErrPermission or nil
}

func (e *Error) Error() string {
	s := e.Op + " " + e.URL + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	return errs
}

// authCodes are S3 error codes of refused credentials that gocloud does not
// map to PermissionDenied (a wrong secret is SignatureDoesNotMatch, which
// it reports as Unknown).
var authCodes = map[string]bool{
	"AccessDenied":                 true,
	"Forbidden":                    true,
	"SignatureDoesNotMatch":        true,
	"InvalidAccessKeyId":           true,
	"InvalidToken":                 true,
	"ExpiredToken":                 true,
	"TokenRefreshRequired":         true,
	"AuthorizationHeaderMalformed": true,
	"AuthenticationFailed":         true, // Azure
	// versitygw's answer to an unknown access key (with status 404, where
	// S3 says InvalidAccessKeyId with 403).
	"XAdminUserNotFound": true,
}

// credentialHint says where each scheme's credentials come from.
var credentialHint = map[string]string{
	"s3":     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance's role",
	"gs":     "GOOGLE_APPLICATION_CREDENTIALS or the instance's service account",
	"azblob": "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or Azure AD (AZURE_CLIENT_ID, ...)",
}

// wrap turns a driver error into an *Error saying what it means for rq.
func wrap(op string, l location, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Op: op, URL: l.name, Bucket: l.bucket, Err: err}
	var coded interface{ ErrorCode() string }
	var status interface{ HTTPStatusCode() int }
	code := ""
	if errors.As(err, &coded) {
		code = coded.ErrorCode()
	}
	httpStatus := 0
	if errors.As(err, &status) {
		httpStatus = status.HTTPStatusCode()
	}
	var stall *StallError
	switch gc := gcerrors.Code(err); {
	case errors.As(err, &stall):
		e.Msg = stall.Error()
		e.Err, e.kind = nil, stall // errors.As finds it; the message says it once
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Msg = "stopped: " + contextReason(err)
		e.Err = nil
	case code == "NoSuchBucket":
		e.Msg = fmt.Sprintf("bucket %q does not exist", l.bucket)
		e.kind = fs.ErrNotExist
	case gc == gcerrors.NotFound:
		e.Msg = "no such object"
		e.kind = fs.ErrNotExist
	case gc == gcerrors.PermissionDenied || authCodes[code] || httpStatus == 401 || httpStatus == 403:
		e.Msg = fmt.Sprintf("access to bucket %q refused: check the credentials (%s)", l.bucket, credentialHint[l.scheme])
		e.kind = fs.ErrPermission
	case gc == gcerrors.FailedPrecondition || code == "PreconditionFailed":
		e.Msg = "the object changed while it was being read (it was replaced by a writer)"
	case errors.As(err, new(*net.OpError)):
		e.Msg = "cannot reach the storage server"
	case errors.Is(err, io.ErrUnexpectedEOF):
		e.Msg = "the connection ended mid-transfer"
	default:
		e.Msg = "failed"
	}
	return e
}

func contextReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline exceeded"
	}
	return "cancelled"
}

// ReadFile returns the whole content of a local file or an object, for
// small documents (JSON states, plans, ranges); large inputs are read
// through Open.
func ReadFile(ctx context.Context, path string) ([]byte, error) {
	l, err := locate(path)
	if err != nil {
		return nil, err
	}
	if l.isLocal() {
		return os.ReadFile(l.local)
	}
	b, err := openBucket(ctx, l)
	if err != nil {
		return nil, err
	}
	r, err := b.NewReader(ctx, l.key, &blob.ReaderOptions{BeforeRead: quiet})
	if err != nil {
		return nil, wrap("read", l, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, wrap("read", l, err)
	}
	return data, nil
}

// WriteFile writes data to path atomically, as Create and Commit do.
func WriteFile(ctx context.Context, path string, data []byte) error {
	w, err := Create(ctx, path)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit()
}

// List returns the files or objects directly under prefix, sorted, each as
// a path or URL that Open accepts (a URL keeps prefix's query, so the
// endpoint carries over).
//
// A prefix ending in "/" names a directory: s3://bucket/run/states/ lists
// the objects of run/states/ (not those of deeper "subdirectories"). A
// prefix not ending in "/" is a name prefix within its directory, as S3
// has it: s3://bucket/run/states/shard- lists shard-*; but a prefix that
// names a directory without the slash (a local directory, or an S3 prefix
// with objects under prefix/ and none beside it) lists that directory, as
// "ls" would. Names starting with "." are left out: they are temporary
// files of writers in progress (atomicfile's .rq-tmp-*) or hidden files.
// A directory or prefix with nothing in it gives an empty list, not an
// error; a missing local directory is an error.
func List(ctx context.Context, prefix string) ([]string, error) {
	l, err := locate(prefix)
	if err != nil {
		return nil, err
	}
	if l.isLocal() {
		return listLocal(l.local)
	}
	b, err := openBucket(ctx, l)
	if err != nil {
		return nil, err
	}
	names, dirs, err := listKeys(ctx, b, l.key)
	if err != nil {
		return nil, wrap("list", l, err)
	}
	if len(names) == 0 && l.key != "" && !strings.HasSuffix(l.key, "/") && len(dirs) == 1 && dirs[0] == l.key+"/" {
		if names, _, err = listKeys(ctx, b, l.key+"/"); err != nil {
			return nil, wrap("list", l, err)
		}
	}
	out := make([]string, len(names))
	for i, k := range names {
		out[i] = l.withKey(k)
	}
	sort.Strings(out)
	return out, nil
}

// listKeys lists the objects directly under prefix (delimiter "/"), and the
// "subdirectories" beside them.
func listKeys(ctx context.Context, b *blob.Bucket, prefix string) (names, dirs []string, err error) {
	it := b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	wd := newWatchdog(ctx)
	defer wd.cancel(nil)
	defer wd.disarm()
	for {
		wd.arm() // each object returned is progress
		obj, err := it.Next(wd.ctx)
		if err == io.EOF {
			return names, dirs, nil
		}
		if err != nil {
			return nil, nil, wd.or(err)
		}
		if obj.IsDir {
			dirs = append(dirs, obj.Key)
			continue
		}
		base := obj.Key[strings.LastIndex(obj.Key, "/")+1:]
		if base == "" || strings.HasPrefix(base, ".") {
			// "" is a directory marker object ("dir/"), made by consoles.
			continue
		}
		names = append(names, obj.Key)
	}
}

func listLocal(prefix string) ([]string, error) {
	dir, namePrefix := prefix, ""
	if fi, err := os.Stat(prefix); err != nil || !fi.IsDir() {
		if strings.HasSuffix(prefix, string(filepath.Separator)) || strings.HasSuffix(prefix, "/") {
			if err == nil {
				err = fmt.Errorf("not a directory")
			}
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		dir, namePrefix = filepath.Split(prefix)
		if dir == "" {
			dir = "."
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasPrefix(n, namePrefix) {
			continue
		}
		if !e.Type().IsRegular() {
			// A symbolic link to a regular file counts, as "cat" would
			// read it; directories and devices do not.
			fi, err := os.Stat(filepath.Join(dir, n))
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out, nil
}

package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the versitygw release the tests run against. It is pinned so
// that a server upgrade is a deliberate change, and it names the cache
// directory so that a new version is built afresh.
const Version = "v1.8.0"

// Module is the package `go install` builds.
const Module = "github.com/versity/versitygw/cmd/versitygw"

const (
	// Region is what the server reports and what URL puts in the URLs.
	Region = "us-east-1"
	// BucketName is the bucket Start creates.
	BucketName = "rq-test"

	// readyTimeout bounds the wait for a started server to answer its
	// health check; a server that takes longer is reported as broken
	// rather than waited for forever.
	readyTimeout = 30 * time.Second
	// buildTimeout bounds `go install` (a cold module cache downloads
	// versitygw's dependencies).
	buildTimeout = 10 * time.Minute
)

// Server is a running versitygw. Its fields are fixed for its lifetime,
// across Stop and Restart: the port, the keys and the data directory stay,
// so URLs made before a restart still name the same objects.
type Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:<port>.
	Endpoint string
	// Bucket is the bucket created at Start.
	Bucket string
	// Region is the region the server was started with.
	Region string
	// AccessKey and SecretKey are the root account's keys.
	AccessKey, SecretKey string

	t    testing.TB
	bin  string
	root string // posix backend directory: one subdirectory per bucket
	log  string // server's stdout and stderr, kept across restarts
	addr string // 127.0.0.1:<port>

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start builds (once per cache) and starts a versitygw on a free loopback
// port with its posix backend in a temporary directory, creates the bucket
// BucketName and arranges for the server to be killed when t ends. It skips
// t, or fails it under CI=true, when the server cannot be built or started.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		unavailable(t, "versitygw %s cannot be built: %v", Version, err)
	}
	dir := t.TempDir()
	s := &Server{
		Bucket:    BucketName,
		Region:    Region,
		AccessKey: "rqtest" + randomHex(6),
		SecretKey: randomHex(20),
		t:         t,
		bin:       bin,
		root:      filepath.Join(dir, "root"),
		log:       filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(s.Stop)
	// A free port can be taken by another process between our probe and
	// the server's bind: try a few ports before giving up.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			unavailable(t, "no free loopback port: %v", err)
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Endpoint = "http://" + s.addr
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 2 {
			unavailable(t, "versitygw %s does not start: %v", Version, err)
		}
	}
	if err := s.createBucket(); err != nil {
		unavailable(t, "versitygw %s at %s: creating bucket %s: %v", Version, s.Endpoint, s.Bucket, err)
	}
	return s
}

// unavailable skips t with the reason, or fails it under CI=true.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("s3test (CI=true, so the real S3 server is required): "+format, args...)
	}
	t.Skipf("s3test: "+format, args...)
}

// URL returns the s3:// URL of key in the bucket, with the query parameters
// gocloud.dev/blob/s3blob needs for this server: its endpoint (plain http),
// the region, and path-style addressing (the bucket in the path, since
// 127.0.0.1 has no per-bucket host names). A key ending in "/" gives a
// prefix URL, as for listing; "" gives the bucket itself.
func (s *Server) URL(key string) string {
	return s.BucketURL(s.Bucket, key)
}

// BucketURL is URL for another bucket on the same server (which need not
// exist: for tests of a missing bucket).
func (s *Server) BucketURL(bucket, key string) string {
	q := url.Values{}
	q.Set("endpoint", s.Endpoint)
	q.Set("region", s.Region)
	q.Set("use_path_style", "true")
	u := url.URL{Scheme: "s3", Host: bucket, RawQuery: q.Encode()}
	if key != "" {
		u.Path = "/" + key
	}
	return u.String()
}

// Env returns the environment, as NAME=value strings for exec.Cmd.Env,
// that gives the AWS SDK this server's credentials and nothing from the
// developer's own AWS setup: no profile, no shared config or credentials
// file, no session token, no endpoint override, no EC2 metadata lookups
// (which would stall for seconds off EC2 when credentials are missing).
func (s *Server) Env() []string {
	none := filepath.Join(filepath.Dir(s.root), "no-aws-config")
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_S3=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// SetEnv sets Env in the test's own process for the rest of t (with
// t.Setenv, so t must not be parallel).
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Root is the posix backend's directory: Root()/<bucket>/<key> is an
// object's data file, for tests that check nothing partial was left.
func (s *Server) Root() string { return s.root }

// Stop kills the server (SIGKILL to its process group, as a crash or a
// lost machine would end it, so open connections are reset mid-transfer)
// and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	killGroup(cmd)
	select {
	case <-exited:
	case <-time.After(readyTimeout):
		s.t.Errorf("s3test: versitygw (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
	}
}

// Pause freezes the server (SIGSTOP to its process group): connections
// stay open and nothing answers, as with a hung server or a half-dead load
// balancer. Resume undoes it; the test's cleanup resumes it too, so Stop
// can end it.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(sigStop)
	s.t.Cleanup(s.Resume)
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil {
		if err := waitStopped(cmd, readyTimeout); err != nil {
			s.t.Fatalf("s3test: %v", err)
		}
	}
}

// Resume lets a paused server run again.
func (s *Server) Resume() { s.signal(sigCont) }

func (s *Server) signal(sig syscallSignal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := signalGroup(cmd, sig); err != nil {
		s.t.Fatalf("s3test: signalling versitygw: %v", err)
	}
}

// Restart starts the server again on the same port, with the same keys
// and data, after Stop. It must be called from the test's goroutine.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The port was ours a moment ago; if another process grabbed it, a
	// short wait rarely helps, but a few tries cost little.
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("s3test: restarting versitygw on %s: %v", s.addr, err)
}

// start runs the server and waits until it answers its health check.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.bin,
		"--port", s.addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--health", "/health",
		// Keep-alive as S3 itself does, so reads measured against this
		// server are not dominated by a TCP handshake per request.
		"--keep-alive",
		"--quiet",
		"posix", s.root)
	cmd.Dir = filepath.Dir(s.root)
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	health := s.Endpoint + "/health"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("versitygw exited at startup (%v); its log %s ends: %s", cmd.ProcessState, s.log, tail(s.log))
		default:
		}
		resp, err := client.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("versitygw did not answer %s within %v (last: %v); its log %s ends: %s", health, readyTimeout, err, s.log, tail(s.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is an S3 client of the server with the root keys.
func (s *Server) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// createBucket creates s.Bucket through the S3 API, as a user would,
// rather than as a directory behind the server's back.
func (s *Server) createBucket() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	_, err := s.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	return err
}

// PutFile uploads the local file at local as object key of the bucket
// (one PutObject, through the S3 API) and returns the object's URL.
func (s *Server) PutFile(local, key string) string {
	s.t.Helper()
	data, err := os.ReadFile(local)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		s.t.Fatalf("s3test: putting %s as %s: %v", local, key, err)
	}
	return s.URL(key)
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(empty)"
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// binary returns the versitygw executable, building it on first use in
// this process: RQ_VERSITYGW if set, else the cached build, else a fresh
// `go install` into the cache.
func binary() (string, error) {
	build.once.Do(func() { build.path, build.err = findOrBuild() })
	return build.path, build.err
}

func findOrBuild() (string, error) {
	if p := os.Getenv("RQ_VERSITYGW"); p != "" {
		if err := runs(p); err != nil {
			return "", fmt.Errorf("RQ_VERSITYGW=%s: %v", p, err)
		}
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the build: %v", err)
	}
	dir := filepath.Join(cache, "rq-test", "versitygw-"+Version)
	bin := filepath.Join(dir, "versitygw")
	if runs(bin) == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build into a directory of our own and rename the result into place,
	// so that test processes of several packages building at once never
	// run a half-written binary: each rename is atomic and they agree.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build versitygw: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "install", Module+"@"+Version)
	cmd.Dir = tmp // outside any module, so no go.mod or vendor applies
	cmd.Env = append(os.Environ(), "GOBIN="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v: %s", Module, Version, err, bytes.TrimSpace(out.Bytes()))
	}
	if err := os.Rename(filepath.Join(tmp, "versitygw"), bin); err != nil {
		return "", err
	}
	if err := runs(bin); err != nil {
		return "", fmt.Errorf("built %s but it does not run: %v", bin, err)
	}
	return bin, nil
}

// runs checks that path is an executable versitygw.
func runs(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		return fmt.Errorf("%s --version: %v: %s", path, err, bytes.TrimSpace(out))
	}
	return nil
}

package s3test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func client(s *Server, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, secret, ""),
	})
}

// The server stores what it is given under Root, survives a restart with
// its data, refuses wrong keys, and is really gone after Stop.
func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client(s, s.SecretKey)
	data := []byte("hello from rq's harness")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b.txt"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(s.Root(), s.Bucket, "a", "b.txt")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object on disk: %q, %v; want %q", got, err, data)
	}

	s.Stop()
	if resp, err := http.Get(s.Endpoint + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("server still answers after Stop: %s", resp.Status)
	}
	s.Stop() // a second Stop does nothing

	s.Restart()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatalf("GetObject after restart: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after restart: %q, %v; want %q", got, err, data)
	}

	if _, err := client(s, "wrong"+s.SecretKey).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.Bucket)}); err == nil {
		t.Fatalf("HeadBucket with a wrong secret succeeded")
	}
}

// URL carries what gocloud's s3blob needs for this server.
func TestURL(t *testing.T) {
	s := &Server{Endpoint: "http://127.0.0.1:1234", Bucket: "bkt", Region: Region}
	u, err := url.Parse(s.URL("run/states/shard 1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "s3" || u.Host != "bkt" || u.Path != "/run/states/shard 1.json" {
		t.Errorf("URL %s: scheme %q host %q path %q", u, u.Scheme, u.Host, u.Path)
	}
	q := u.Query()
	if q.Get("endpoint") != s.Endpoint || q.Get("region") != Region || q.Get("use_path_style") != "true" {
		t.Errorf("URL %s: query %v", u, q)
	}
	if b := s.URL(""); !strings.HasPrefix(b, "s3://bkt?") {
		t.Errorf("bucket URL %s", b)
	}
}

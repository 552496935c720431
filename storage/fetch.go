package storage

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
)

// DefaultConfigDriveTimeout is [storage] config_drive_fetch_timeout's default.
const DefaultConfigDriveTimeout = 60 * time.Second

// newFetchClient is the HTTP client of config-drive downloads: TLS verified
// against caFile's certificates (system roots when empty), no redirects (a
// redirect could leave https or the host the conductor named), and one
// deadline for the whole download.
func newFetchClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: [storage] config_drive_ca_file: %v", errdefs.ErrInvalidArgument, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: [storage] config_drive_ca_file %s holds no PEM certificate", errdefs.ErrInvalidArgument, caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if timeout <= 0 {
		timeout = DefaultConfigDriveTimeout
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		},
	}, nil
}

// ValidateConfigDriveOpts checks the download options the way New uses them,
// for `check` and start-up.
func ValidateConfigDriveOpts(o Settings) error {
	_, err := newFetchClient(o.ConfigDriveCAFile, o.ConfigDriveTimeout)
	return err
}

// wireLimit bounds the bytes read from the network for an image of size
// bytes: the image itself, or its gzip stream, which deflate can make a
// little larger than its input (5 bytes per stored block of up to 64 KiB,
// plus header and trailer); 64 KiB more covers both with room.
func wireLimit(size int64) int64 { return size + size/1024 + 64<<10 }

// countingReader counts what was read from the network.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fetchConfigDrive downloads c.URL into dest: the body is the ISO, raw or
// gzip'd (told by the gzip magic, as config_drive.data). At most c.Size+1
// bytes of image (and wireLimit of body) are read, so a server sending more
// is cut off there; the image must be exactly c.Size bytes with sha256
// c.SHA256, else nothing is written. The file is padded to whole 2048-byte
// sectors and renamed into place. Errors name the URL by RedactURL only.
func (r *Reconciler) fetchConfigDrive(ctx context.Context, c *nodestate.ConfigDrive, dest string) (err error) {
	where := nodestate.RedactURL(c.URL)
	defer func() {
		if err != nil {
			err = fmt.Errorf("config drive %s from %s: %w", c.SHA256, where, err)
		}
	}()
	if c.Size <= 0 || c.Size > int64(r.o.Storage.ConfigDriveMaxBytes) {
		return r.tooBig()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("%w: bad URL", errdefs.ErrInvalidArgument)
	}
	start := time.Now()
	resp, err := r.fetch.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL: keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: download: %v", errdefs.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: download: HTTP %s", errdefs.ErrUnavailable, resp.Status)
	}
	limit := wireLimit(c.Size)
	if resp.ContentLength > limit {
		return fmt.Errorf("%w: the server announces %d bytes, more than the %d-byte image can take", errdefs.ErrInvalidArgument, resp.ContentLength, c.Size)
	}
	wire := &countingReader{r: io.LimitReader(resp.Body, limit+1)}
	br := bufio.NewReader(wire)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%w: bad gzip: %v", errdefs.ErrInvalidArgument, err)
		}
		zr.Multistream(false)
		src = zr
	}
	if err := os.MkdirAll(r.o.Storage.ConfigDriveDir, 0o700); err != nil {
		return fmt.Errorf("%w: config drive dir: %v", errdefs.ErrUnavailable, err)
	}
	f, err := os.CreateTemp(r.o.Storage.ConfigDriveDir, ".fetch-*")
	if err != nil {
		return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(src, c.Size+1))
	switch {
	case wire.n > limit:
		return fmt.Errorf("%w: the body is longer than a %d-byte image can be (stopped after %d bytes)", errdefs.ErrInvalidArgument, c.Size, wire.n)
	case err != nil:
		return fmt.Errorf("%w: download: %v", errdefs.ErrUnavailable, scrub(err))
	case n > c.Size:
		return fmt.Errorf("%w: the image is larger than config_drive.size %d (stopped reading there)", errdefs.ErrInvalidArgument, c.Size)
	case n < c.Size:
		return fmt.Errorf("%w: the image has %d bytes, config_drive.size says %d", errdefs.ErrInvalidArgument, n, c.Size)
	}
	if got := hexSum(h); got != c.SHA256 {
		return fmt.Errorf("%w: the image's sha256 is %s, not config_drive.sha256", errdefs.ErrInvalidArgument, got)
	}
	// Zeros after an ISO's last sector are ignored by readers; SPDK needs
	// whole blocks.
	if pad := n % backend.ConfigDriveBlockSize; pad != 0 {
		if _, err := f.Write(make([]byte, backend.ConfigDriveBlockSize-pad)); err != nil {
			return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
	}
	f = nil
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
	}
	if d, err := os.Open(filepath.Dir(dest)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	logctx.Logger(ctx, r.log).Info("config drive fetched", zap.String("sha256", c.SHA256), zap.String("from", where),
		zap.Int64("bytes", n), zap.Int64("wire_bytes", wire.n), zap.Duration("took", time.Since(start)))
	return nil
}

// scrub keeps a body read error's own words: a *url.Error (a timeout hit
// while reading) would quote the whole URL.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
)

// ConfigDrivePrefix starts the name of every config-drive AIO bdev. The rest
// comes from the image's sha256, so a new image is a new bdev: a running host
// never sees the content change under a live namespace.
const ConfigDrivePrefix = backend.Prefix + "cfgdrive"

// DefaultConfigDriveMaxBytes is [storage] config_drive_max_bytes' default.
const DefaultConfigDriveMaxBytes = 64 << 20

// configDriveKey is the config drive's key among remembered nsids.
const configDriveKey = "config-drive"

var isoName = regexp.MustCompile(`^[0-9a-f]{64}\.iso$`)

// ConfigDriveBdevName is the AIO bdev of the image with this sha256.
func ConfigDriveBdevName(sha string) string { return ConfigDrivePrefix + "-" + sha[:16] }

func (r *Reconciler) imagePath(sha string) string {
	return filepath.Join(r.o.Storage.ConfigDriveDir, sha+".iso")
}

// maxEncoded bounds the base64 text before it is decoded: a raw ISO at the
// cap, in base64, plus room for gzip framing and line breaks.
func (r *Reconciler) maxEncoded() int {
	n := r.o.Storage.ConfigDriveMaxBytes
	return (n+2)/3*4 + n/57 + 4096
}

// checkConfigDrive is the side-effect-free part of admission: the encoded
// size cap, or an image the agent already holds when no data is sent.
func (r *Reconciler) checkConfigDrive(c *nodestate.ConfigDrive) error {
	if c == nil {
		return nil
	}
	if c.Data == "" {
		if _, err := os.Stat(r.imagePath(c.SHA256)); err != nil {
			return fmt.Errorf("%w: config_drive %s: the agent holds no such image; send it in config_drive.data",
				errdefs.ErrInvalidArgument, c.SHA256)
		}
		return nil
	}
	if len(c.Data) > r.maxEncoded() {
		return r.tooBig()
	}
	return nil
}

func (r *Reconciler) tooBig() error {
	return fmt.Errorf("%w: config_drive is larger than config_drive_max_bytes (%d bytes decoded)",
		errdefs.ErrInvalidArgument, r.o.Storage.ConfigDriveMaxBytes)
}

// decodeConfigDrive turns config_drive.data into the ISO: base64, then gunzip
// when it starts with the gzip magic (Ironic's form), else taken as raw.
func (r *Reconciler) decodeConfigDrive(data string) ([]byte, error) {
	data = strings.Map(func(c rune) rune {
		if c == '\n' || c == '\r' {
			return -1
		}
		return c
	}, data)
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("%w: config_drive.data is not base64: %v", errdefs.ErrInvalidArgument, err)
	}
	limit := int64(r.o.Storage.ConfigDriveMaxBytes)
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: config_drive.data: bad gzip: %v", errdefs.ErrInvalidArgument, err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%w: config_drive.data: bad gzip: %v", errdefs.ErrInvalidArgument, err)
		}
	}
	if int64(len(raw)) > limit {
		return nil, r.tooBig()
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: config_drive.data is an empty image", errdefs.ErrInvalidArgument)
	}
	return raw, nil
}

// Admit implements agent.Admitter: it decodes and checks the config drive,
// writes the image atomically under config_drive_dir and drops the data from
// d, so the persisted state holds the sha256 only. Nothing is written unless
// the image matches its sha256.
func (r *Reconciler) Admit(ctx context.Context, d *nodestate.Desired) error {
	c := d.ConfigDrive
	if err := r.checkConfigDrive(c); err != nil || c == nil || c.Data == "" {
		return err
	}
	iso, err := r.decodeConfigDrive(c.Data)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(iso)
	if got := hex.EncodeToString(sum[:]); got != c.SHA256 {
		return fmt.Errorf("%w: config_drive.sha256 is %s but the image's is %s", errdefs.ErrInvalidArgument, c.SHA256, got)
	}
	path := r.imagePath(c.SHA256)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(r.o.Storage.ConfigDriveDir, 0o700); err != nil {
			return fmt.Errorf("%w: config drive dir: %v", errdefs.ErrUnavailable, err)
		}
		// Zeros after an ISO's last sector are ignored by readers; SPDK
		// needs whole blocks.
		if pad := len(iso) % backend.ConfigDriveBlockSize; pad != 0 {
			iso = append(iso, make([]byte, backend.ConfigDriveBlockSize-pad)...)
		}
		if err := atomicfile.Write(path, iso, 0o600); err != nil {
			return fmt.Errorf("%w: write config drive: %v", errdefs.ErrUnavailable, err)
		}
		logctx.Logger(ctx, r.log).Info("config drive stored", zap.String("sha256", c.SHA256), zap.Int("bytes", len(iso)))
	}
	c.Data = ""
	return nil
}

// gcImages removes the images d does not name. A file written in the last
// minute is left alone: it may belong to a state being admitted right now.
func (r *Reconciler) gcImages(d *nodestate.Desired) {
	ents, err := os.ReadDir(r.o.Storage.ConfigDriveDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !isoName.MatchString(e.Name()) || (d.ConfigDrive != nil && e.Name() == d.ConfigDrive.SHA256+".iso") {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		if err := os.Remove(filepath.Join(r.o.Storage.ConfigDriveDir, e.Name())); err == nil {
			r.log.Info("old config drive image removed", zap.String("file", e.Name()))
		}
	}
}

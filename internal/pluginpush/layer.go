package pluginpush

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every tar entry: a fixed time keeps the
// layer's digest a function of the rootfs content alone.
var epoch = time.Unix(0, 0).UTC()

// layer is the gzipped rootfs tar, held in memory: a plugin rootfs is a
// static binary and a few directories, a few MiB.
type layer struct {
	gz     []byte
	digest v1.Hash // sha256 of gz
	diffID v1.Hash // sha256 of the uncompressed tar
}

var _ v1.Layer = (*layer)(nil)

// buildLayer tars and gzips the tree under root.
func buildLayer(root string) (*layer, error) {
	var tarBuf bytes.Buffer
	if err := writeTar(&tarBuf, root); err != nil {
		return nil, err
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(tarBuf.Bytes()))
	if err != nil {
		return nil, err
	}

	var gzBuf bytes.Buffer
	zw := gzip.NewWriter(&gzBuf) // zero Header: no name, no time
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, fmt.Errorf("compress rootfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress rootfs: %w", err)
	}
	digest, _, err := v1.SHA256(bytes.NewReader(gzBuf.Bytes()))
	if err != nil {
		return nil, err
	}
	return &layer{gz: gzBuf.Bytes(), digest: digest, diffID: diffID}, nil
}

// writeTar writes every entry under root, root itself excluded, with names
// relative to root. Only directories, regular files and symbolic links can be
// in a plugin rootfs; anything else is refused with its path. Hard links are
// stored as separate copies.
func writeTar(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	// WalkDir visits entries in lexical order, so the tar is reproducible.
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    filepath.ToSlash(rel),
			Mode:    int64(info.Mode().Perm()),
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		// Keep setuid, setgid and sticky bits (a /tmp is 1777).
		if info.Mode()&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case mode.IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = target
		default:
			return fmt.Errorf("%s: %s files cannot be packed into a plugin rootfs (only directories, regular files and symbolic links)", path, mode.Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("%s: changed while being packed (%d bytes read, %d expected)", path, n, hdr.Size)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack rootfs: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack rootfs: %w", err)
	}
	return nil
}

func (l *layer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *layer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *layer) Size() (int64, error)     { return int64(len(l.gz)), nil }

func (l *layer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

func (l *layer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}

func (l *layer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.gz))
}

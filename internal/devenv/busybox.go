package devenv

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is where Debian's busybox-static puts its binary.
const BusyboxPath = "/bin/busybox"

// BusyboxRepository is the repository, under the registry, that a docker.io
// mirror serves for `FROM busybox`.
const BusyboxRepository = "library/busybox"

// BusyboxImage builds a one-layer busybox image from a static busybox binary:
// the binary, a symlink per applet, /tmp and a root user, as the official
// busybox image has.
func BusyboxImage(ctx context.Context, busybox string) (v1.Image, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (install Debian's busybox-static): %w", err)
	}
	if f, err := elf.NewFile(bytes.NewReader(bin)); err != nil {
		return nil, fmt.Errorf("%s is not an ELF executable: %w", busybox, err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				return nil, fmt.Errorf("%s is dynamically linked, so it cannot run alone in an image: install Debian's busybox-static", busybox)
			}
		}
	}
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets of %s: %w", busybox, err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	mtime := time.Unix(0, 0)
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime})
		tw.Write(data)
	}
	dir("bin/", 0o755)
	dir("etc/", 0o755)
	dir("root/", 0o700)
	dir("tmp/", 0o1777)
	file("bin/busybox", 0o755, bin)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: mtime})
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing busybox layer: %w", err)
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, fmt.Errorf("making busybox layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, fmt.Errorf("making busybox image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"sh"}
	return mutate.ConfigFile(img, cf)
}

// SeedBusybox pushes a busybox image built from busybox to
// registry/library/busybox:latest and returns its digest. It is a no-op
// when the registry already has that exact image.
func SeedBusybox(ctx context.Context, registry, busybox string) (string, error) {
	img, err := BusyboxImage(ctx, busybox)
	if err != nil {
		return "", err
	}
	ref, err := name.ParseReference(registry+"/"+BusyboxRepository+":latest", name.Insecure)
	if err != nil {
		return "", err
	}
	dg, err := img.Digest()
	if err != nil {
		return "", err
	}
	if d, err := remote.Head(ref, remote.WithContext(ctx)); err == nil && d.Digest == dg {
		return dg.String(), nil
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing busybox to %s: %w", registry, err)
	}
	return dg.String(), nil
}

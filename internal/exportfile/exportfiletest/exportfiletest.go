// Package exportfiletest makes export files for tests, including hostile
// ones: gzipped tars whose entries may be long runs of one byte (a
// gigabyte of zeros costs about a megabyte of file and no time to make) or
// nested tars (a service archive) built from entries.
//
// Runs are written as gzip members of their own, a precompressed member per
// MiB: gzip readers (Go's, and so Convox's) read concatenated members as one
// stream.
package exportfiletest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sync"
)

// Entry is one entry of a tar.
type Entry struct {
	// Header is the entry's header; its Size is set from the content for
	// regular files.
	Header tar.Header
	// The content: Data; or, when Entries is not nil, a tar of Entries;
	// or, when RunSize > 0, RunSize bytes of RunByte.
	Data    []byte
	Entries []Entry
	RunByte byte
	RunSize int64
}

// File is a regular file entry holding data.
func File(name string, data []byte) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, Data: data}
}

// Run is a regular file entry holding size bytes of b.
func Run(name string, b byte, size int64) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, RunByte: b, RunSize: size}
}

// Archive is a regular file entry holding a tar of entries.
func Archive(name string, entries []Entry) Entry {
	if entries == nil {
		entries = []Entry{}
	}
	return Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, Entries: entries}
}

// segment is a piece of the uncompressed stream: data, or n bytes of b.
type segment struct {
	data []byte
	b    byte
	n    int64
}

func (s segment) size() int64 {
	if s.data != nil {
		return int64(len(s.data))
	}
	return s.n
}

// tarSegments lays out entries as a tar.
func tarSegments(entries []Entry) ([]segment, int64, error) {
	var out []segment
	var total int64
	add := func(s segment) {
		out = append(out, s)
		total += s.size()
	}
	for _, e := range entries {
		var content []segment
		var size int64
		switch {
		case e.Entries != nil:
			var err error
			if content, size, err = tarSegments(e.Entries); err != nil {
				return nil, 0, err
			}
		case e.RunSize > 0:
			content, size = []segment{{b: e.RunByte, n: e.RunSize}}, e.RunSize
		default:
			content, size = []segment{{data: e.Data}}, int64(len(e.Data))
		}
		h := e.Header
		if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = size
		}
		var hb bytes.Buffer
		if err := tar.NewWriter(&hb).WriteHeader(&h); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", h.Name, err)
		}
		add(segment{data: hb.Bytes()})
		if h.Size == 0 {
			continue
		}
		for _, s := range content {
			add(s)
		}
		if pad := (512 - size%512) % 512; pad > 0 {
			add(segment{data: make([]byte, pad)})
		}
	}
	add(segment{data: make([]byte, 1024)})
	return out, total, nil
}

// Size is the size of the tar of entries, uncompressed.
func Size(entries []Entry) (int64, error) {
	_, n, err := tarSegments(entries)
	return n, err
}

// Write writes entries to w as a gzipped tar.
func Write(w io.Writer, entries []Entry) error {
	segs, _, err := tarSegments(entries)
	if err != nil {
		return err
	}
	var zw *gzip.Writer
	closeMember := func() error {
		if zw == nil {
			return nil
		}
		err := zw.Close()
		zw = nil
		return err
	}
	write := func(p []byte) error {
		if zw == nil {
			zw = gzip.NewWriter(w)
		}
		_, err := zw.Write(p)
		return err
	}
	for _, s := range segs {
		if s.data != nil {
			if err := write(s.data); err != nil {
				return err
			}
			continue
		}
		n := s.n
		if n >= runMember {
			if err := closeMember(); err != nil {
				return err
			}
			m := member(s.b)
			for ; n >= runMember; n -= runMember {
				if _, err := w.Write(m); err != nil {
					return err
				}
			}
		}
		if n > 0 {
			if err := write(bytes.Repeat([]byte{s.b}, int(n))); err != nil {
				return err
			}
		}
	}
	if zw == nil {
		zw = gzip.NewWriter(w)
	}
	return closeMember()
}

// Bytes is Write to memory.
func Bytes(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

const runMember = 1 << 20

var (
	membersMu sync.Mutex
	members   = map[byte][]byte{}
)

// member is a gzip member of runMember bytes of b.
func member(b byte) []byte {
	membersMu.Lock()
	defer membersMu.Unlock()
	if m, ok := members[b]; ok {
		return m
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(bytes.Repeat([]byte{b}, runMember))
	zw.Close()
	members[b] = buf.Bytes()
	return members[b]
}

// Read reads a gzipped tar into entries, holding each content as Data.
func Read(file []byte) ([]Entry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	return ReadTar(zr)
}

// ReadTar reads a tar into entries, holding each content as Data.
func ReadTar(r io.Reader) ([]Entry, error) {
	var out []Entry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Header: *h, Data: data})
	}
}

// Nested returns the entries of the tar e holds.
func (e Entry) Nested() ([]Entry, error) {
	if e.Entries != nil {
		return e.Entries, nil
	}
	return ReadTar(bytes.NewReader(e.Data))
}

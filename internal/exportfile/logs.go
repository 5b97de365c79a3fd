package exportfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// Batches ReadLogs hands out.
const (
	logBatchLines = 1000
	logBatchBytes = 1 << 20
)

// logSpool is build.log as Read keeps it on disk: lines of at most
// MaxLogLineLength bytes, each ending in "\n", at most MaxLogLines of them
// and MaxLogBytes in all.
type logSpool struct {
	file  string
	kept  int   // lines in the file
	bytes int64 // bytes in the file
	total int   // lines build.log holds
	cut   bool  // lines were left out
	w     *bufio.Writer
	err   error
}

// spoolLog copies the build.log entry, size bytes of r, to file, line by
// line, in memory bounded by MaxLogLineLength whatever the lines.
func spoolLog(file string, r io.Reader, size int64) (*logSpool, error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	s := &logSpool{file: file, w: bufio.NewWriterSize(f, 64<<10)}
	err = s.copy(io.LimitReader(r, size), size)
	if err == nil {
		err = s.w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	s.w = nil
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BuildLogName, readError(err))
	}
	return s, nil
}

func (s *logSpool) copy(r io.Reader, size int64) error {
	br := bufio.NewReaderSize(r, MaxLogLineLength)
	// line holds the current line's bytes not written yet: less than
	// MaxLogLineLength, plus the chunk just read.
	line := make([]byte, 0, 2*MaxLogLineLength)
	split := false // the current line was split already
	var n int64
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		end := err == nil // chunk ends the line
		if end {
			chunk = chunk[:len(chunk)-1]
		}
		line = append(line, chunk...)
		for len(line) > MaxLogLineLength {
			k := cutAt(line)
			s.add(line[:k])
			line = line[:copy(line, line[k:])]
			split = true
		}
		switch {
		case end:
			if len(line) > 0 || !split {
				s.add(line)
			}
			line, split = line[:0], false
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				s.add(line)
			}
			if n < size {
				return io.ErrUnexpectedEOF
			}
			return s.err
		default:
			return err
		}
		if s.err != nil {
			return s.err
		}
		if s.cut {
			return s.countRest(br, n, size, len(line) > 0, split && len(line) == 0)
		}
	}
}

// countRest counts the lines left once the limits are reached, without
// splitting them: n bytes were read of size; pending says the current
// line has bytes, ended says it was all written already (so its newline
// ends no new line).
func (s *logSpool) countRest(r io.Reader, n, size int64, pending, ended bool) error {
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if chunk := buf[:k]; k > 0 {
			if ended && chunk[0] == '\n' {
				chunk = chunk[1:]
			}
			ended = false
			s.total += bytes.Count(chunk, []byte{'\n'})
			if len(chunk) > 0 {
				pending = chunk[len(chunk)-1] != '\n'
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			if pending {
				s.total++
			}
			if n < size {
				return io.ErrUnexpectedEOF
			}
			return nil
		case err != nil:
			return err
		}
	}
}

// cutAt returns where to cut line, longer than MaxLogLineLength: at most
// there, and not inside a UTF-8 sequence when it can help it.
func cutAt(line []byte) int {
	for k := MaxLogLineLength; k > MaxLogLineLength-utf8.UTFMax; k-- {
		if utf8.RuneStart(line[k]) {
			return k
		}
	}
	return MaxLogLineLength
}

// add keeps line unless the limits are reached.
func (s *logSpool) add(line []byte) {
	s.total++
	if s.cut || s.kept >= MaxLogLines || s.bytes+int64(len(line))+1 > MaxLogBytes {
		s.cut = true
		return
	}
	s.kept++
	s.bytes += int64(len(line)) + 1
	if _, err := s.w.Write(line); err != nil && s.err == nil {
		s.err = err
	}
	if err := s.w.WriteByte('\n'); err != nil && s.err == nil {
		s.err = err
	}
}

// cutNote is the line ReadLogs adds when Read left lines out.
func (s *logSpool) cutNote() string {
	return fmt.Sprintf("convox-build: this log was cut on import: %d of its %d lines kept (an import keeps at most %d lines and %d MiB)",
		s.kept, s.total, MaxLogLines, MaxLogBytes>>20)
}

// ReadLogs calls fn with the build's log lines, in order, a batch at a time
// (at most 1000 lines and about 1 MiB): the lines of build.log, then, when
// Read had to leave lines out, one line saying so. A new slice is passed
// each time. An export without build.log (as Convox writes them) has no
// lines. ReadLogs stops at fn's first error and returns it.
func (a *Archive) ReadLogs(fn func(lines []string) error) error {
	if a.log == nil {
		return nil
	}
	f, err := os.Open(a.log.file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", BuildLogName, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	batch := make([]string, 0, logBatchLines)
	size := 0
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", BuildLogName, err)
		}
		batch = append(batch, line[:len(line)-1])
		size += len(line)
		if len(batch) == logBatchLines || size >= logBatchBytes {
			if err := fn(batch); err != nil {
				return err
			}
			batch, size = make([]string, 0, logBatchLines), 0
		}
	}
	if a.log.cut {
		batch = append(batch, a.log.cutNote())
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

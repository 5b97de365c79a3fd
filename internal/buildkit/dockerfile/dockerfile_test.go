package dockerfile_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/buildkit/dockerfile"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		args   []string
		stages []string
	}{
		{"one per line", "ARG A\nFROM busybox\nARG B=1\n", []string{"A", "B"}, []string{""}},
		{"several per line, quotes, any case", "FROM busybox AS Build\n  arg A=\"x y\" B='z' C\nArG D\n", []string{"A", "B", "C", "D"}, []string{"build"}},
		{"continuations and comments inside", "FROM busybox\nARG A \\\n# a comment\n    B=2 \\\n    C\n", []string{"A", "B", "C"}, []string{""}},
		{"escape directive", "# escape=`\nFROM busybox\nARG A `\n  B\nRUN echo \\\n", []string{"A", "B"}, []string{""}},
		{"heredoc is not an instruction", "FROM busybox\nRUN <<EOF\nARG NOT_AN_ARG\nEOF\nARG REAL\n", []string{"REAL"}, []string{""}},
		{"onbuild arg is the child's", "FROM busybox\nONBUILD ARG LATER\nARG NOW\n", []string{"NOW"}, []string{""}},
		{"stages and repeated names", "ARG BASE=busybox\nFROM ${BASE} AS base\nARG X\nFROM base AS development\nARG X\nARG Y\nFROM base\n", []string{"BASE", "X", "Y"}, []string{"base", "development", ""}},
		{"syntax directive is a comment", "# syntax=docker/dockerfile:1\nFROM busybox\nARG A\n", []string{"A"}, []string{""}},
		{"another frontend's instruction", "# syntax=example.com/frontend:2\nFROM busybox AS Base\nARG A B=1\nFUTURE thing\nARG C\n", []string{"A", "B", "C"}, []string{"base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df, err := dockerfile.Parse([]byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(df.Args, tt.args) || !reflect.DeepEqual(df.Stages, tt.stages) {
				t.Errorf("args %q stages %q, want %q %q", df.Args, df.Stages, tt.args, tt.stages)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want dockerfile.Error
	}{
		{"empty", "", dockerfile.Error{Message: "file with no instructions"}},
		{"only comments", "# nothing\n\n", dockerfile.Error{Message: "file with no instructions"}},
		{"unknown instruction", "FROM busybox\nRUN true\nFORM x\n", dockerfile.Error{Line: 3, Message: "unknown instruction: FORM (did you mean FROM?)"}},
		{"no FROM", "ARG A\n", dockerfile.Error{Message: "dockerfile contains no stages to build"}},
		{"instruction before FROM", "RUN true\nFROM busybox\n", dockerfile.Error{Line: 1, Message: "no build stage in current context"}},
		{"bad stage name", "FROM busybox AS 1st\n", dockerfile.Error{Line: 1, Message: `invalid name for build stage: "1st", name can't start with a number or contain symbols`}},
		{"unterminated heredoc", "FROM busybox\nRUN <<EOF\necho\n", dockerfile.Error{Line: 2, Message: "unterminated heredoc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dockerfile.Parse([]byte(tt.src))
			var de *dockerfile.Error
			if !errors.As(err, &de) || *de != tt.want {
				t.Errorf("error %#v, want %#v", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("FROM busybox\nARG A B=1\n"))
	f.Add([]byte("# escape=`\nFROM x\nRUN <<EOF\nEOF\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		df, err := dockerfile.Parse(data)
		if (df == nil) == (err == nil) {
			t.Fatalf("df %v err %v", df, err)
		}
	})
}

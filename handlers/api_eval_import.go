package handlers

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

// maxEvalCSV bounds an imported CSV: ten thousand rows of results fit in a
// fraction of it.
const maxEvalCSV = 4 << 20

// maxListedErrors bounds the row errors one answer lists.
const maxListedErrors = 20

var evalColumns = []string{"recipe", "benchmark", "success_rate", "episodes", "notes"}

// apiEvalImport imports many results from a CSV with a header row naming the
// columns recipe, benchmark, success_rate (required), episodes and notes (in
// any order). Every row is checked first; one bad row refuses the whole file,
// and the answer lists each problem by line number. The body is the CSV
// itself, or a multipart form whose "file" field holds it.
func (s *Server) apiEvalImport(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	body, err := csvBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("evals.csv: larger than %d bytes", maxEvalCSV)})
			return
		}
		badRequest(w, "evals.csv: "+err.Error())
		return
	}
	defer body.Close()
	refs, err := s.recipeRefs(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	es, problems := parseEvalCSV(body, refs)
	if len(problems) > 0 {
		listed := problems[:min(len(problems), maxListedErrors)]
		msg := fmt.Sprintf("evals.csv: nothing imported, %d problem(s): %s", len(problems), strings.Join(listed, "; "))
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": msg, "errors": listed})
		return
	}
	s.addEvals(w, r, id, es)
}

// csvBody is the CSV of a request: a multipart "file" field or the body.
func csvBody(w http.ResponseWriter, r *http.Request) (io.ReadCloser, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxEvalCSV)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, err
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return nil, errors.New(`the form has no "file" field`)
			}
			if err != nil {
				return nil, err
			}
			if part.FormName() == "file" {
				return part, nil
			}
		}
	}
	return r.Body, nil
}

// parseEvalCSV reads and checks every row, returning the results or the
// problems (each "line N: what is wrong").
func parseEvalCSV(rd io.Reader, refs *recipeRefs) ([]store.NewEval, []string) {
	cr := csv.NewReader(rd)
	cr.FieldsPerRecord = -1 // a short row is reported with its line, not as a parse failure
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, []string{"the file is empty; the first line must name the columns " + strings.Join(evalColumns, ",")}
	}
	if err != nil {
		return nil, []string{err.Error()}
	}
	col := map[string]int{}
	var problems []string
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) // spreadsheets write a BOM
		switch {
		case !slices.Contains(evalColumns, name):
			problems = append(problems, fmt.Sprintf("line 1: unknown column %q (columns: %s)", h, strings.Join(evalColumns, ",")))
		case col[name] != 0:
			problems = append(problems, fmt.Sprintf("line 1: column %q appears twice", name))
		default:
			col[name] = i + 1 // 0 means absent
		}
	}
	for _, need := range evalColumns[:3] {
		if col[need] == 0 {
			problems = append(problems, fmt.Sprintf("line 1: no %q column", need))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	var out []store.NewEval
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			problems = append(problems, err.Error())
			break // the CSV itself is broken: later lines cannot be trusted
		}
		if len(out)+len(problems) >= store.MaxEvalBatch {
			problems = append(problems, fmt.Sprintf("line %d: more than %d rows; split the file", line, store.MaxEvalBatch))
			break
		}
		field := func(name string) string {
			if i := col[name] - 1; i >= 0 && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if len(rec) != len(header) {
			problems = append(problems, fmt.Sprintf("line %d: %d fields, the header has %d", line, len(rec), len(header)))
			continue
		}
		e, err := evalRow(field, refs)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", line, err))
			continue
		}
		out = append(out, e)
	}
	if len(problems) == 0 && len(out) == 0 {
		problems = append(problems, "no results after the header line")
	}
	return out, problems
}

func evalRow(field func(string) string, refs *recipeRefs) (store.NewEval, error) {
	rate, err := parseSuccessRate(field("success_rate"))
	if err != nil {
		return store.NewEval{}, err
	}
	e := store.NewEval{Benchmark: field("benchmark"), SuccessRate: rate, Notes: field("notes")}
	if ep := field("episodes"); ep != "" {
		if e.Episodes, err = strconv.ParseInt(ep, 10, 64); err != nil {
			return store.NewEval{}, fmt.Errorf("episodes %q: not a whole number", ep)
		}
	}
	if e.RecipeID, err = refs.resolve(field("recipe")); err != nil {
		return store.NewEval{}, err
	}
	return e, store.CheckEval(&e)
}

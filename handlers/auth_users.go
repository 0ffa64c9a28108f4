package handlers

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

type meResponse struct {
	Auth AuthMode   `json:"auth"`
	Name string     `json:"name"` // empty when auth is none
	Role store.Role `json:"role"`
	Via  string     `json:"via"` // none, session or token
}

// apiMe tells the dashboard who is signed in and what they may do, so it can
// hide buttons a viewer cannot use (the server refuses them anyway).
func (s *Server) apiMe(w http.ResponseWriter, r *http.Request) {
	p := currentPrincipal(r)
	if p == nil {
		s.unauthorized(w, "not signed in")
		return
	}
	resp := meResponse{Auth: s.cfg.Auth, Role: p.Role, Via: p.Via}
	if p.User != nil {
		resp.Name = p.User.Name
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) apiUserList(w http.ResponseWriter, r *http.Request) {
	users, err := s.db.ListUsers(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (s *Server) apiUserGet(w http.ResponseWriter, r *http.Request) {
	u, err := s.db.GetUser(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

type userCreateRequest struct {
	Name     string     `json:"name"`
	Role     store.Role `json:"role"`
	Password string     `json:"password"` // empty: one is generated and returned once
}

type userCreateResponse struct {
	*store.User
	// Password is set only when the server generated it; it is shown this once.
	Password string `json:"password,omitempty"`
}

func (s *Server) apiUserCreate(w http.ResponseWriter, r *http.Request) {
	var req userCreateRequest
	if !s.decodeStrict(w, r, &req) {
		return
	}
	generated := ""
	if req.Password == "" {
		generated = store.GeneratePassword()
		req.Password = generated
	}
	u, err := s.db.CreateUser(r.Context(), req.Name, req.Role, req.Password)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.log.Info("user created", "name", u.Name, "role", u.Role, "by", currentUserName(r), "request_id", requestID(r))
	writeJSON(w, http.StatusCreated, userCreateResponse{User: u, Password: generated})
}

type userUpdateRequest struct {
	Role     *store.Role `json:"role"`
	Password *string     `json:"password"`
}

// apiUserUpdate changes a role and/or a password. A new password ends the
// user's sessions.
func (s *Server) apiUserUpdate(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	var req userUpdateRequest
	if !s.decodeStrict(w, r, &req) {
		return
	}
	if req.Role == nil && req.Password == nil {
		badRequest(w, `nothing to change: send "role" and/or "password"`)
		return
	}
	if _, err := s.db.GetUser(r.Context(), name); err != nil {
		s.apiError(w, r, err)
		return
	}
	if req.Password != nil {
		if err := s.db.SetUserPassword(r.Context(), name, *req.Password); err != nil {
			s.apiError(w, r, err)
			return
		}
	}
	if req.Role != nil {
		if _, err := s.db.SetUserRole(r.Context(), name, *req.Role); err != nil {
			s.apiError(w, r, err)
			return
		}
	}
	u, err := s.db.GetUser(r.Context(), name)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.log.Info("user changed", "name", u.Name, "role", u.Role, "password_changed", req.Password != nil,
		"by", currentUserName(r), "request_id", requestID(r))
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) apiUserDelete(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if err := s.db.DeleteUser(r.Context(), name); err != nil {
		s.apiError(w, r, err)
		return
	}
	s.log.Info("user deleted", "name", name, "by", currentUserName(r), "request_id", requestID(r))
	w.WriteHeader(http.StatusNoContent)
}

func currentUserName(r *http.Request) string {
	if u := currentUser(r); u != nil {
		return u.Name
	}
	return "(auth none)"
}

// decodeStrict reads a JSON body of at most MaxJSONBody bytes with no unknown
// fields, answering 400 or 413 itself when it cannot.
func (s *Server) decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{"request body too large"})
			return false
		}
		badRequest(w, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

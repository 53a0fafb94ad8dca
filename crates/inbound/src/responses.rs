//! OpenAI Responses API (`POST /v1/responses`) to and from canonical form.

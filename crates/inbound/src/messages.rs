//! Anthropic Messages API (`POST /v1/messages`) to and from canonical form.

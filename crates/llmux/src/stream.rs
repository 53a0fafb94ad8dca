//! [`CompletionStream`]: a routed chat stream handed to SDK code — chunks as they arrive,
//! the call's cost and trace, and [`CompletionStream::collect`] for the whole answer.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use llmux_core::{ChatChunk, ChatResponse, StreamAccumulator};
use llmux_cost::Money;
use llmux_engine::MeteredStream;
use llmux_router::Trace;

use crate::client::Metered;
use crate::error::ClientError;

/// The chunks of one routed chat call ([`Client::chat_stream`](crate::Client::chat_stream)),
/// ending with a usage-only chunk. The call is recorded once, when the stream ends or is
/// dropped; dropping it early cancels the upstream call (recorded with status 499).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_util::StreamExt;
/// use llmux::{ChatRequest, Client};
///
/// let client = Client::builder().build()?; // serves `mock/*` with no configuration
/// let mut stream = client.chat_stream(ChatRequest::new("mock/echo").user("one two three")).await?;
/// let mut text = String::new();
/// while let Some(chunk) = stream.next().await {
///     for choice in chunk?.choices {
///         text.push_str(choice.delta.content.as_deref().unwrap_or_default());
///     }
/// }
/// assert_eq!(text, "one two three");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CompletionStream {
    inner: MeteredStream,
}

impl CompletionStream {
    pub(crate) fn new(inner: MeteredStream) -> Self {
        Self { inner }
    }

    /// The call's id (its `CallRecord`'s `request_id`).
    pub fn request_id(&self) -> &str {
        &self.inner.meta().request_id
    }

    /// What the router has done so far (final once the stream ended): deployment,
    /// attempts, fallbacks, resumptions.
    pub fn trace(&self) -> Trace {
        self.inner.trace()
    }

    /// What the call cost, once its usage chunk has passed (`None` before that, or when no
    /// price is known for the model that answered).
    pub fn cost(&self) -> Option<Money> {
        self.inner.cost().flatten()
    }

    /// Read the stream to its end and return the whole answer (text, reasoning, tool calls
    /// with their arguments assembled, usage), with the call's id, trace and cost.
    pub async fn collect(mut self) -> Result<Metered<ChatResponse>, ClientError> {
        let mut acc = StreamAccumulator::new();
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut self).poll_next(cx)).await;
            match next {
                Some(Ok(chunk)) => acc.push(&chunk),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(Metered {
            response: acc.finish(),
            request_id: self.request_id().to_owned(),
            trace: self.trace(),
            cost: self.cost(),
        })
    }
}

impl Stream for CompletionStream {
    type Item = Result<ChatChunk, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                let trace = self.inner.trace();
                Poll::Ready(Some(Err(ClientError::new(e, Some(trace)))))
            }
            Poll::Ready(Some(Ok(c))) => Poll::Ready(Some(Ok(c))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

//! The WhatsApp Cloud API client (sends, marks read, uploads) and media streaming: the only code
//! that talks to Graph. Flows reach it through [`crate::ports::MessageSender`].

pub mod client;
pub mod media;

use crate::ports::{BusinessNumberId, MessageSender};
use crate::whatsapp::messages::OutgoingMessage;
use client::{SendError, SendReceipt, WhatsAppClient};

impl MessageSender for WhatsAppClient {
    async fn send(
        &self,
        from: &BusinessNumberId,
        message: &OutgoingMessage,
    ) -> Result<SendReceipt, SendError> {
        self.send_from(from.as_str(), message).await
    }
}

//! The tonic service: `WriteDocument`, `DeleteDocument`, `InspectDocument`, `SearchChunks`.

use std::sync::Arc;

use apex_proto::writer::v1::writer_service_server::WriterService;
use apex_proto::writer::v1::{
    DeleteDocumentRequest, DeleteDocumentResponse, InspectDocumentRequest, InspectDocumentResponse,
    SearchChunksRequest, SearchChunksResponse, WriteDocumentRequest, WriteDocumentResponse,
};
use tonic::{Request, Response, Status};

use crate::saga::Writer;

#[derive(Debug, Clone)]
pub struct WriterGrpc {
    writer: Arc<Writer>,
}

impl WriterGrpc {
    pub fn new(writer: Arc<Writer>) -> Self {
        Self { writer }
    }
}

#[tonic::async_trait]
impl WriterService for WriterGrpc {
    async fn write_document(
        &self,
        request: Request<WriteDocumentRequest>,
    ) -> Result<Response<WriteDocumentResponse>, Status> {
        let req = request.into_inner();
        let document = req.document.clone();
        apex_common::telemetry::record_document(document.as_ref());
        self.writer
            .write(req)
            .await
            .map(Response::new)
            .map_err(|e| e.into_status(document))
    }

    async fn delete_document(
        &self,
        request: Request<DeleteDocumentRequest>,
    ) -> Result<Response<DeleteDocumentResponse>, Status> {
        tracing::Span::current().record("apex.document_id", request.get_ref().document_id.as_str());
        self.writer
            .delete(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| e.into_status(None))
    }

    async fn inspect_document(
        &self,
        request: Request<InspectDocumentRequest>,
    ) -> Result<Response<InspectDocumentResponse>, Status> {
        tracing::Span::current().record("apex.document_id", request.get_ref().document_id.as_str());
        Ok(Response::new(
            self.writer
                .inspect(&request.into_inner().document_id)
                .await?,
        ))
    }

    async fn search_chunks(
        &self,
        request: Request<SearchChunksRequest>,
    ) -> Result<Response<SearchChunksResponse>, Status> {
        Ok(Response::new(
            self.writer.search(request.into_inner()).await?,
        ))
    }
}

//! Creates the template's queues, tables and buckets in moto under one stack name, and resolves
//! the references functions' environments make to them.

use crate::template::{Reference, Template};
use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::BTreeMap;

/// The physical resources of one local stack.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// The stack name every physical name derives from.
    pub stack_name: String,
    /// Queue logical id → URL.
    pub queue_urls: BTreeMap<String, String>,
    /// Queue logical id → ARN.
    pub queue_arns: BTreeMap<String, String>,
    /// Queue logical id → name.
    pub queue_names: BTreeMap<String, String>,
    /// Table logical id → name.
    pub tables: BTreeMap<String, String>,
    /// Bucket logical id → name.
    pub buckets: BTreeMap<String, String>,
    /// Template parameters as the local stack sets them.
    pub parameters: BTreeMap<String, String>,
}

impl Resources {
    /// A queue's URL by logical id.
    pub fn queue_url(&self, logical_id: &str) -> anyhow::Result<&str> {
        self.queue_urls
            .get(logical_id)
            .map(String::as_str)
            .with_context(|| format!("no queue {logical_id} in template.yaml"))
    }

    /// Resolves a template value as CloudFormation would for this stack.
    pub fn resolve(&self, reference: &Reference) -> String {
        match reference {
            Reference::Literal(s) => s.clone(),
            Reference::Ref(id) => self.ref_of(id),
            Reference::GetAtt(id, attribute) => self.get_att(id, attribute),
            Reference::Sub(text) => self.substitute(text),
        }
    }

    fn ref_of(&self, id: &str) -> String {
        if id == "AWS::StackName" {
            return self.stack_name.clone();
        }
        if id == "AWS::Region" {
            return "us-east-1".into();
        }
        if id == "AWS::AccountId" {
            // moto's account.
            return "123456789012".into();
        }
        if id == "AWS::Partition" {
            return "aws".into();
        }
        [
            &self.queue_urls,
            &self.tables,
            &self.buckets,
            &self.parameters,
        ]
        .into_iter()
        .find_map(|m| m.get(id).cloned())
        .unwrap_or_default()
    }

    fn get_att(&self, id: &str, attribute: &str) -> String {
        match attribute {
            "Arn" => self.queue_arns.get(id).cloned().unwrap_or_default(),
            "QueueName" => self.queue_names.get(id).cloned().unwrap_or_default(),
            "QueueUrl" => self.queue_urls.get(id).cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &after[..end];
            out.push_str(&match name.split_once('.') {
                Some((id, attribute)) => self.get_att(id, attribute),
                None => self.ref_of(name),
            });
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Creates every resource of `template` for `stack_name`; dead-letter queues first.
pub async fn provision(
    aws: &SdkConfig,
    template: &Template,
    stack_name: &str,
) -> anyhow::Result<Resources> {
    let mut resources = Resources {
        stack_name: stack_name.to_owned(),
        ..Resources::default()
    };
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut queues: Vec<_> = template.queues.iter().collect();
    queues.sort_by_key(|q| q.redrive.is_some());
    for queue in queues {
        let name = resources.resolve(&queue.name);
        let mut request = sqs.create_queue().queue_name(&name);
        if queue.fifo {
            request = request.attributes(QueueAttributeName::FifoQueue, "true");
            request = request.attributes(
                QueueAttributeName::ContentBasedDeduplication,
                queue.content_based_deduplication.to_string(),
            );
        }
        if let Some(timeout) = queue.visibility_timeout {
            request =
                request.attributes(QueueAttributeName::VisibilityTimeout, timeout.to_string());
        }
        if let Some((dlq, max)) = &queue.redrive {
            let arn = resources
                .queue_arns
                .get(dlq)
                .with_context(|| format!("{}: DLQ {dlq} not found", queue.logical_id))?;
            let policy = serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max });
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = request
            .send()
            .await
            .with_context(|| format!("creating queue {name}"))?
            .queue_url
            .unwrap_or_default();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        resources.queue_urls.insert(queue.logical_id.clone(), url);
        resources.queue_arns.insert(queue.logical_id.clone(), arn);
        resources.queue_names.insert(queue.logical_id.clone(), name);
    }

    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    for table in &template.tables {
        let name = resources.resolve(&table.name);
        let key = |(attribute, kind): &(String, String)| {
            KeySchemaElement::builder()
                .attribute_name(attribute)
                .key_type(KeyType::from(kind.as_str()))
                .build()
        };
        let mut request = dynamodb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attribute, kind) in &table.attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::from(kind.as_str()))
                    .build()?,
            );
        }
        for element in &table.key_schema {
            request = request.key_schema(key(element)?);
        }
        for (index, schema) in &table.global_indexes {
            let mut gsi = GlobalSecondaryIndex::builder()
                .index_name(index)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                );
            for element in schema {
                gsi = gsi.key_schema(key(element)?);
            }
            request = request.global_secondary_indexes(gsi.build()?);
        }
        request
            .send()
            .await
            .with_context(|| format!("creating table {name}"))?;
        if let Some(attribute) = &table.ttl_attribute {
            dynamodb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(attribute)
                        .build()?,
                )
                .send()
                .await?;
        }
        resources.tables.insert(table.logical_id.clone(), name);
    }

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    );
    for bucket in &template.buckets {
        let name = resources.resolve(&bucket.name);
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .with_context(|| format!("creating bucket {name}"))?;
        resources.buckets.insert(bucket.logical_id.clone(), name);
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_follow_cloudformation() {
        let mut resources = Resources {
            stack_name: "demo".into(),
            ..Resources::default()
        };
        resources.queue_arns.insert("Q".into(), "arn:q".into());
        assert_eq!(
            resources.resolve(&Reference::Sub("${AWS::StackName}-inbound.fifo".into())),
            "demo-inbound.fifo"
        );
        assert_eq!(
            resources.resolve(&Reference::Sub("x-${Q.Arn}-y".into())),
            "x-arn:q-y"
        );
        assert_eq!(
            resources.resolve(&Reference::GetAtt("Q".into(), "Arn".into())),
            "arn:q"
        );
    }
}

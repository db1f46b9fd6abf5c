/** cdk-nag findings reviewed and accepted, each with its reason (cdk-nag v3: CDK's acknowledge API). */
import { type Stack, Validations } from "aws-cdk-lib";

export const acknowledgedFindings: { id: string; reason: string }[] = [
  {
    id: "AwsSolutions-IAM5[Resource::*]",
    reason: "X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) has no resource-level permissions.",
  },
  {
    id: "AwsSolutions-IAM5[Resource::<TableCD117FA1.Arn>/index/*]",
    reason: "Read access covers the table's own secondary indexes (gsi1), nothing outside the table.",
  },
  {
    id: "AwsSolutions-IAM5[Resource::<AnthropicKey6AA7A8EC>-??????]",
    reason: "Secrets Manager ARNs end in a random suffix; the grant is to this one secret.",
  },
  {
    id: "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
    reason: "With a customer KMS key (kmsKeyArn), table access needs CDK's standard grant on that one key.",
  },
  {
    id: "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
    reason: "With a customer KMS key (kmsKeyArn), table writes need data keys from that one key.",
  },
  {
    id: "AwsSolutions-SMG4",
    reason: "The secret is a third-party (Anthropic) API key; it is rotated in the Anthropic console, not by a Lambda.",
  },
  {
    id: "AwsSolutions-SQS3",
    reason: "stream-failures is itself the on-failure destination (a dead-letter queue) of the stream consumers.",
  },
];

export function suppressReviewedFindings(stack: Stack): void {
  for (const finding of acknowledgedFindings) Validations.of(stack).acknowledge(finding);
}

# The release table. Its layout is the contract in src/aws/store.rs: partition key `pk` (S),
# no sort key; release items `pk = "release#<name>"`, lease items `lease#...`. The controller
# reads the stream as its change feed (NEW_AND_OLD_IMAGES).
resource "aws_dynamodb_table" "releases" {
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  attribute {
    name = "pk"
    type = "S"
  }

  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  point_in_time_recovery {
    enabled = true
  }

  # Encryption at rest is always on. Without this block DynamoDB uses the AWS owned key;
  # with a key ARN, that customer managed key.
  dynamic "server_side_encryption" {
    for_each = var.table_kms_key_arn == null ? [] : [var.table_kms_key_arn]
    content {
      enabled     = true
      kms_key_arn = server_side_encryption.value
    }
  }

  deletion_protection_enabled = var.table_deletion_protection

  tags = var.tags
}

#include "common/identifiers.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix {
namespace {

using ::testing::HasSubstr;

TEST(ValidateDatabaseIdTest, AcceptsTheAllowedCharacters) {
  EXPECT_TRUE(ValidateDatabaseId("db-1").ok());
  EXPECT_TRUE(ValidateDatabaseId("eu.orders_pg:5432").ok());
  EXPECT_TRUE(ValidateDatabaseId(std::string(kMaxDatabaseIdLength, 'a')).ok());
}

TEST(ValidateDatabaseIdTest, RejectsAndSaysWhy) {
  EXPECT_THAT(ValidateDatabaseId("").message(), HasSubstr("empty"));
  EXPECT_THAT(
      ValidateDatabaseId(std::string(kMaxDatabaseIdLength + 1, 'a')).message(),
      HasSubstr("longer than 128"));
  const absl::Status slash = ValidateDatabaseId("a/b");
  EXPECT_EQ(slash.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(slash.message(), HasSubstr("\"a/b\" contains '/'"));
  EXPECT_FALSE(ValidateDatabaseId("a b").ok());
}

}  // namespace
}  // namespace ecliptix

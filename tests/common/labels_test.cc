#include "common/labels.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix {
namespace {

using ::testing::HasSubstr;

Labels Parsed(absl::string_view text) {
  absl::StatusOr<Labels> labels = ParseLabels(text);
  EXPECT_TRUE(labels.ok()) << labels.status();
  return labels.ok() ? *labels : Labels();
}

std::string ParseError(absl::string_view text) {
  absl::StatusOr<Labels> labels = ParseLabels(text);
  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(labels.status().message());
}

LabelSelector Selector(absl::string_view text) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
  EXPECT_TRUE(selector.ok()) << selector.status();
  return selector.ok() ? *selector : LabelSelector();
}

std::string SelectorError(absl::string_view text) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
  EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument)
      << text;
  return std::string(selector.status().message());
}

TEST(ParseLabelsTest, ParsesKeyValuePairs) {
  EXPECT_EQ(Parsed("env=prod,region=eu-west,tier=1"),
            (Labels{{"env", "prod"}, {"region", "eu-west"}, {"tier", "1"}}));
  EXPECT_EQ(Parsed(" env = prod , zone=eu:1 "),
            (Labels{{"env", "prod"}, {"zone", "eu:1"}}));
  EXPECT_EQ(Parsed("team/owner=db.ops_1"),
            (Labels{{"team/owner", "db.ops_1"}}));
  EXPECT_EQ(Parsed("empty="), (Labels{{"empty", ""}}));
  EXPECT_EQ(Parsed(""), Labels());
  EXPECT_EQ(Parsed("   "), Labels());
}

TEST(ParseLabelsTest, RejectsMalformedLabels) {
  EXPECT_THAT(ParseError("env"),
              HasSubstr("\"env\" is not of the form key=value"));
  EXPECT_THAT(ParseError("env=prod,,tier=1"), HasSubstr("key=value"));
  EXPECT_THAT(ParseError("=prod"), HasSubstr("label key is empty"));
  EXPECT_THAT(ParseError("env=prod,env=staging"),
              HasSubstr("\"env\" is given twice"));
  EXPECT_THAT(ParseError("re gion=eu"), HasSubstr("\"re gion\" contains ' '"));
  EXPECT_THAT(ParseError("-env=prod"), HasSubstr("must start with a letter"));
  EXPECT_THAT(ParseError("env=pr od"), HasSubstr("\"pr od\" contains ' '"));
  EXPECT_THAT(ParseError("env=a/b"), HasSubstr("contains '/'"));
  EXPECT_THAT(ParseError(std::string(64, 'k') + "=v"),
              HasSubstr("longer than 63"));
  EXPECT_THAT(ParseError("k=" + std::string(64, 'v')),
              HasSubstr("longer than 63"));
}

TEST(ParseLabelsTest, LengthLimitsAreInclusive) {
  EXPECT_TRUE(
      ParseLabels(std::string(63, 'k') + "=" + std::string(63, 'v')).ok());
}

TEST(FormatLabelsTest, SortedCanonicalForm) {
  EXPECT_EQ(FormatLabels({{"region", "eu"}, {"env", "prod"}}),
            "env=prod,region=eu");
  EXPECT_EQ(FormatLabels({}), "");
  EXPECT_EQ(Parsed(FormatLabels(Parsed("b=2,a=1"))), Parsed("a=1,b=2"));
}

const Labels kProdEu = {{"env", "prod"}, {"region", "eu"}, {"tier", "1"}};
const Labels kStagingUs = {{"env", "staging"}, {"region", "us"}};
const Labels kNone = {};

TEST(LabelSelectorTest, EmptyMatchesEverything) {
  for (absl::string_view text : {"", "  "}) {
    LabelSelector selector = Selector(text);
    EXPECT_TRUE(selector.empty());
    EXPECT_TRUE(selector.Matches(kProdEu));
    EXPECT_TRUE(selector.Matches(kNone));
    EXPECT_EQ(selector.ToString(), "");
  }
}

TEST(LabelSelectorTest, Equals) {
  for (absl::string_view text : {"env=prod", "env==prod", " env = prod "}) {
    LabelSelector selector = Selector(text);
    EXPECT_TRUE(selector.Matches(kProdEu)) << text;
    EXPECT_FALSE(selector.Matches(kStagingUs)) << text;
    EXPECT_FALSE(selector.Matches(kNone)) << text;
    EXPECT_EQ(selector.ToString(), "env=prod");
  }
}

TEST(LabelSelectorTest, EqualsEmptyValue) {
  LabelSelector selector = Selector("env=");
  EXPECT_TRUE(selector.Matches({{"env", ""}}));
  EXPECT_FALSE(selector.Matches(kNone));
  EXPECT_FALSE(selector.Matches(kProdEu));
}

TEST(LabelSelectorTest, NotEquals) {
  LabelSelector selector = Selector("env!=prod");
  EXPECT_FALSE(selector.Matches(kProdEu));
  EXPECT_TRUE(selector.Matches(kStagingUs));
  // A database without the label is not "prod".
  EXPECT_TRUE(selector.Matches(kNone));
  EXPECT_EQ(selector.ToString(), "env!=prod");
}

TEST(LabelSelectorTest, In) {
  for (absl::string_view text :
       {"region in (eu,us)", "region in (us|eu)", "region  in ( eu , us )"}) {
    LabelSelector selector = Selector(text);
    EXPECT_TRUE(selector.Matches(kProdEu)) << text;
    EXPECT_TRUE(selector.Matches(kStagingUs)) << text;
    EXPECT_FALSE(selector.Matches({{"region", "ap"}})) << text;
    EXPECT_FALSE(selector.Matches(kNone)) << text;
    EXPECT_EQ(selector.ToString(), "region in (eu,us)");
  }
  // One value reads as equality.
  EXPECT_EQ(Selector("region in (eu)").ToString(), "region=eu");
}

TEST(LabelSelectorTest, NotIn) {
  LabelSelector selector = Selector("region notin (eu,ap)");
  EXPECT_FALSE(selector.Matches(kProdEu));
  EXPECT_TRUE(selector.Matches(kStagingUs));
  EXPECT_TRUE(selector.Matches(kNone));
  EXPECT_EQ(selector.ToString(), "region notin (ap,eu)");
}

TEST(LabelSelectorTest, Exists) {
  LabelSelector selector = Selector("tier");
  EXPECT_TRUE(selector.Matches(kProdEu));
  EXPECT_FALSE(selector.Matches(kStagingUs));
  EXPECT_TRUE(selector.Matches({{"tier", ""}}));
  EXPECT_EQ(selector.ToString(), "tier");
}

TEST(LabelSelectorTest, NotExists) {
  LabelSelector selector = Selector("!tier");
  EXPECT_FALSE(selector.Matches(kProdEu));
  EXPECT_TRUE(selector.Matches(kStagingUs));
  EXPECT_TRUE(selector.Matches(kNone));
  EXPECT_EQ(selector.ToString(), "!tier");
}

TEST(LabelSelectorTest, AllRequirementsMustHold) {
  LabelSelector selector = Selector("env=prod,region in (eu,us),!canary,tier");
  EXPECT_TRUE(selector.Matches(kProdEu));
  Labels canary = kProdEu;
  canary["canary"] = "true";
  EXPECT_FALSE(selector.Matches(canary));
  EXPECT_FALSE(selector.Matches(kStagingUs));
  EXPECT_EQ(selector.ToString(), "env=prod,region in (eu,us),!canary,tier");
}

TEST(LabelSelectorTest, ToStringParsesBackToTheSameSelector) {
  for (absl::string_view text :
       {"env==prod", "a in (z,y,x),b notin (q)", "!x,y", "k!=v,zone=eu:1"}) {
    const std::string canonical = Selector(text).ToString();
    EXPECT_EQ(Selector(canonical).ToString(), canonical) << text;
  }
}

TEST(LabelSelectorTest, MalformedSelectorsNameTheBadRequirement) {
  EXPECT_THAT(SelectorError("env==prod,re gion=eu"),
              HasSubstr("requirement 2 \"re gion=eu\": label key \"re gion\" "
                        "contains ' '"));
  EXPECT_THAT(SelectorError("env=prod,"),
              HasSubstr("requirement 2 \"\": is empty"));
  EXPECT_THAT(SelectorError(",env=prod"), HasSubstr("requirement 1"));
  EXPECT_THAT(SelectorError("env===prod"),
              HasSubstr("\"env===prod\": unknown operator"));
  EXPECT_THAT(SelectorError("env=pr od"), HasSubstr("\"pr od\" contains ' '"));
  EXPECT_THAT(SelectorError("a=b=c"), HasSubstr("\"b=c\" contains '='"));
  EXPECT_THAT(SelectorError("!env=prod"),
              HasSubstr("must start with a letter"));
  EXPECT_THAT(SelectorError("env in (a,b"), HasSubstr("'(' is never closed"));
  EXPECT_THAT(SelectorError("env in a,b)"),
              HasSubstr("')' without a matching '('"));
  EXPECT_THAT(SelectorError("env in ()"), HasSubstr("the value list is empty"));
  EXPECT_THAT(SelectorError("env in (a) x"),
              HasSubstr("expected ')' at the end"));
  EXPECT_THAT(SelectorError("env within (a)"),
              HasSubstr("expected \"key in (a,b)\" or \"key notin (a,b)\""));
  EXPECT_THAT(SelectorError("in (a)"), HasSubstr("expected \"key in (a,b)\""));
  EXPECT_THAT(SelectorError("env in (a,b c)"),
              HasSubstr("\"b c\" contains ' '"));
  EXPECT_THAT(SelectorError("env in a"),
              HasSubstr("requirement 1 \"env in a\""));
  EXPECT_THAT(SelectorError(std::string(64, 'k')), HasSubstr("longer than 63"));
  // The whole selector is quoted too, so the message stands on its own.
  EXPECT_THAT(SelectorError("env=prod,,x"),
              HasSubstr("selector \"env=prod,,x\": requirement 2"));
}

TEST(ValidateLabelTest, KeysAndValues) {
  EXPECT_TRUE(ValidateLabelKey("a").ok());
  EXPECT_TRUE(ValidateLabelKey("9.x_y-z/w").ok());
  EXPECT_FALSE(ValidateLabelKey("").ok());
  EXPECT_FALSE(ValidateLabelKey("_a").ok());
  EXPECT_FALSE(ValidateLabelKey("a:b").ok());
  EXPECT_TRUE(ValidateLabelValue("").ok());
  EXPECT_TRUE(ValidateLabelValue("a.b_c-d:e").ok());
  EXPECT_FALSE(ValidateLabelValue("a,b").ok());
}

}  // namespace
}  // namespace ecliptix
